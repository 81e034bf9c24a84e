//! One pass of a scenario's calls — sequential, then in flight — and what it measures: the
//! Node app's CPU for the Node rows, delivery to every app and CPU by process group for posts.

use std::time::Duration;

use roomhooks::v1::admin_client::AdminClient;
use tokio::time::Instant;
use tonic::transport::Channel;

use super::{Calls, Hop, Key, POST_BATCHES_IN_FLIGHT, Round, SEQUENTIAL_EVENTS_PER_CALL, Scenario};
use crate::{
    calls::{PostCaller, list_apps},
    child::Child,
    cpu::Groups,
    error::Error,
    load::{Caller, Stop, Throughput, concurrent, sequential},
    node_app,
    plan::Plan,
};

/// How long the Node app has to answer `cpu`.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the apps may take to handle every post event sent.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);

impl Scenario {
    /// `seq_calls` sequential calls, then calls in flight until `stop`.
    pub(super) async fn exercise(
        &mut self,
        seq_calls: u64,
        plan: &Plan,
        stop: Stop,
    ) -> Result<Round, Error> {
        let in_flight = plan.in_flight;
        let node_app = match (&mut self.hop, self.key) {
            (Hop::Sidecar { apps, .. }, Key::JoinNode(..)) => Some(apps),
            _ => None,
        };
        match &mut self.calls {
            Calls::Floor(caller) => simple(caller, seq_calls, in_flight, stop).await,
            Calls::Join(caller) => match node_app {
                Some(node) => {
                    let before = node_cpu(node).await?;
                    let (mut round, calls) = counted(caller, seq_calls, in_flight, stop).await?;
                    let used = node_cpu(node).await? - before;
                    round.app_cpu_us_per_call = Some(used / calls.max(1) as f64);
                    Ok(round)
                }
                None => simple(caller, seq_calls, in_flight, stop).await,
            },
            Calls::Create(caller) => simple(caller, seq_calls, in_flight, stop).await,
            Calls::Post {
                caller,
                admin,
                sent,
            } => {
                let post = PostRun {
                    caller,
                    admin,
                    sent,
                };
                post.round(&mut self.hop, seq_calls, in_flight, stop).await
            }
        }
    }
}

/// A post scenario's caller and what it has sent so far.
struct PostRun<'a> {
    caller: &'a PostCaller,
    admin: &'a mut AdminClient<Channel>,
    /// Events sent since the scenario started (the apps count every one).
    sent: &'a mut u64,
}

impl PostRun<'_> {
    /// Sequential calls, their backlog delivered, then calls in flight timed until every app
    /// handled every event.
    async fn round(
        self,
        hop: &mut Hop,
        seq_calls: u64,
        in_flight: usize,
        stop: Stop,
    ) -> Result<Round, Error> {
        let groups = hop.cpu_groups();
        let Some(apps) = hop.apps() else {
            return Err(Error::Child("a post scenario without apps".into()));
        };
        let per_call = self.caller.events_per_call();
        let in_flight = if per_call > 1 {
            POST_BATCHES_IN_FLIGHT
        } else {
            in_flight
        };
        // A batch carries POST_BATCH events: fewer sequential calls, so its sequential part
        // sends about as many events as a single-event row's (at least 10 calls).
        let seq_calls = if per_call > 1 {
            (seq_calls * SEQUENTIAL_EVENTS_PER_CALL / per_call).max(10.min(seq_calls))
        } else {
            seq_calls
        };
        let latency = sequential(self.caller, seq_calls).await?;
        *self.sent += seq_calls * per_call;
        // The backlog of the sequential calls is delivered before the timed part.
        delivered(apps, self.admin, *self.sent).await?;
        let before = groups.as_ref().map(Groups::read).transpose()?;
        let started = Instant::now();
        let load = concurrent(self.caller, in_flight, stop).await?;
        *self.sent += load.calls * per_call;
        delivered(apps, self.admin, *self.sent).await?;
        let cpu_per_event = match (&groups, before) {
            (Some(groups), Some(before)) => {
                Some(before.per_event(&groups.read()?, load.calls * per_call))
            }
            _ => None,
        };
        let delivery = Throughput {
            calls: load.calls * per_call,
            elapsed: started.elapsed(),
        };
        Ok(Round {
            latency,
            per_sec: load.per_sec() * per_call as f64,
            delivered_per_sec: Some(delivery.per_sec()),
            app_cpu_us_per_call: None,
            cpu_per_event,
        })
    }
}

async fn simple<C: Caller>(
    caller: &C,
    seq_calls: u64,
    in_flight: usize,
    stop: Stop,
) -> Result<Round, Error> {
    counted(caller, seq_calls, in_flight, stop)
        .await
        .map(|(round, _)| round)
}

/// A [`simple`] run, with the number of calls it made (sequential and in flight).
async fn counted<C: Caller>(
    caller: &C,
    seq_calls: u64,
    in_flight: usize,
    stop: Stop,
) -> Result<(Round, u64), Error> {
    let latency = sequential(caller, seq_calls).await?;
    let load = concurrent(caller, in_flight, stop).await?;
    let round = Round {
        latency,
        per_sec: load.per_sec(),
        delivered_per_sec: None,
        app_cpu_us_per_call: None,
        cpu_per_event: None,
    };
    Ok((round, seq_calls + load.calls))
}

/// The Node app process's CPU time so far, in µs.
async fn node_cpu(node: &mut Child) -> Result<f64, Error> {
    node.send_line("cpu").await?;
    let answer = node.expect_line("cpu ", ANSWER_TIMEOUT).await?;
    node_app::parse_cpu(&answer)
        .ok_or_else(|| Error::Child(format!("the Node app answered `cpu {answer}`")))
}

/// Waits until every app handled `total` events, then until the sidecar holds no unacknowledged
/// event (so the next run starts with empty queues).
async fn delivered(
    apps: &mut Child,
    admin: &mut AdminClient<Channel>,
    total: u64,
) -> Result<(), Error> {
    apps.send_line(&format!("expect {total}")).await?;
    apps.expect_line(&format!("reached {total}"), DELIVERY_TIMEOUT)
        .await?;
    let drained = async {
        loop {
            let listed = list_apps(admin).await?;
            if listed.apps.iter().all(|a| a.queued_post_events == 0) {
                return Ok::<(), Error>(());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(DELIVERY_TIMEOUT, drained)
        .await
        .map_err(|_| {
            Error::Child(format!(
                "the sidecar still had unacknowledged post events {DELIVERY_TIMEOUT:?} after \
                 the apps handled them"
            ))
        })?
}
