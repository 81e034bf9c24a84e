//! `roomhooks-bench drive`: a fixed number of calls to a process that is already running, so a
//! profiler attached to it (perf, `callgrind_control -z` / `-d`) sees only the calls.

use crate::{
    calls::{CreateCaller, FloorCaller, JoinCaller, PostCaller, channel},
    cli::{DriveArgs, DriveCall},
    error::Error,
    load::{Caller, Stop, Throughput, concurrent},
    scenario::POST_BATCH,
};

/// Makes the calls and prints `N calls in S s: R calls/s`.
pub async fn run(args: DriveArgs) -> Result<(), Error> {
    let channel = channel(&args.endpoint).await?;
    let apps = args.apps;
    let done = match args.call {
        DriveCall::Floor => drive(&FloorCaller::new(channel, true), &args).await?,
        DriveCall::Unary => drive(&FloorCaller::new(channel, false), &args).await?,
        DriveCall::Join => drive(&JoinCaller::new(channel, apps), &args).await?,
        DriveCall::Create => drive(&CreateCaller::new(channel, apps), &args).await?,
        DriveCall::Post => {
            let apps = u32::try_from(apps).unwrap_or(u32::MAX);
            drive(&PostCaller::new(channel, apps, None), &args).await?
        }
        DriveCall::PostBatch => {
            let apps = u32::try_from(apps).unwrap_or(u32::MAX);
            drive(&PostCaller::new(channel, apps, Some(POST_BATCH)), &args).await?
        }
    };
    println!(
        "{} calls in {:.3} s: {:.0} calls/s",
        done.calls,
        done.elapsed.as_secs_f64(),
        done.per_sec()
    );
    Ok(())
}

async fn drive<C: Caller>(caller: &C, args: &DriveArgs) -> Result<Throughput, Error> {
    concurrent(caller, args.in_flight.max(1), Stop::Calls(args.calls)).await
}
