//! The two ways of loading a target: sequential calls (latency) and a fixed number of calls in
//! flight (throughput).

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{task::JoinSet, time::Instant};

use crate::{
    error::Error,
    stats::{Latency, nanos_histogram},
};

/// Something the load generator calls: one request, answer checked.
pub trait Caller: Clone + Send + Sync + 'static {
    /// Makes one call and checks its answer.
    fn call(&self) -> impl Future<Output = Result<(), Error>> + Send;
}

/// When a throughput run ends.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    /// After this many calls in total.
    Calls(u64),
    /// No new call starts after this long.
    After(Duration),
}

/// What a throughput run did.
#[derive(Clone, Copy, Debug)]
pub struct Throughput {
    /// Calls completed.
    pub calls: u64,
    /// From the first call's start to the last one's end.
    pub elapsed: Duration,
}

impl Throughput {
    /// Calls per second.
    pub fn per_sec(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// Makes `calls` calls one after another and returns their latency percentiles.
pub async fn sequential<C: Caller>(caller: &C, calls: u64) -> Result<Latency, Error> {
    let mut histogram = nanos_histogram();
    for _ in 0..calls {
        let started = Instant::now();
        caller.call().await?;
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        histogram.saturating_record(nanos.max(1));
    }
    Ok(Latency::from_nanos(&histogram))
}

/// Keeps `in_flight` calls going until `stop`, and counts them.
pub async fn concurrent<C: Caller>(
    caller: &C,
    in_flight: usize,
    stop: Stop,
) -> Result<Throughput, Error> {
    let started = Instant::now();
    let tickets = Arc::new(AtomicU64::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..in_flight {
        let caller = caller.clone();
        let tickets = Arc::clone(&tickets);
        workers.spawn(async move {
            let mut done = 0u64;
            loop {
                let go = match stop {
                    Stop::Calls(total) => tickets.fetch_add(1, Ordering::Relaxed) < total,
                    Stop::After(length) => started.elapsed() < length,
                };
                if !go {
                    return Ok::<u64, Error>(done);
                }
                caller.call().await?;
                done += 1;
            }
        });
    }
    let mut calls = 0;
    while let Some(joined) = workers.join_next().await {
        calls += joined.map_err(|e| Error::Child(format!("a load worker failed: {e}")))??;
    }
    Ok(Throughput {
        calls,
        elapsed: started.elapsed(),
    })
}
