//! An extender: adds a `created_via` custom field and a welcome bot to every new room.
//!
//! Run: `cargo run -p roomhooks-sdk --example extender [ENDPOINT]`.

use roomhooks_sdk::{App, Extension};

#[tokio::main]
async fn main() -> Result<(), roomhooks_sdk::SdkError> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:50051".into());
    App::builder("extender")
        .version(env!("CARGO_PKG_VERSION"))
        .priority(20)
        .pre_room_create_extend(|_ctx, _room| async {
            Ok(Extension::new()
                .field("created_via", "roomhooks")
                .member("welcome-bot"))
        })
        .build()
        .run_until(endpoint, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
