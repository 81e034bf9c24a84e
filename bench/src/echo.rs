//! The floor's echo peer (`roomhooks-bench echo`): opens `Relay.Attach` like an app opens its
//! stream, and sends every request straight back up.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    calls::channel, child::stdin_closed, cli::EchoArgs, error::Error,
    relay_proto::relay_client::RelayClient,
};

/// Replies that may wait to go up (the SDK's uplink capacity).
const UPLINK_CAPACITY: usize = 1024;

/// Attaches to the relay, prints `ready`, and echoes until the stream or stdin closes.
pub async fn run(args: EchoArgs) -> Result<(), Error> {
    let mut client = RelayClient::new(channel(&args.endpoint).await?);
    let (up, up_rx) = mpsc::channel(UPLINK_CAPACITY);
    let mut down = client
        .attach(ReceiverStream::new(up_rx))
        .await
        .map_err(|status| Error::Rpc {
            what: "Relay.Attach",
            status,
        })?
        .into_inner();
    println!("ready");
    let echo = async {
        while let Ok(Some(request)) = down.message().await {
            if up.send(request).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        () = echo => {}
        () = stdin_closed() => {}
    }
    Ok(())
}
