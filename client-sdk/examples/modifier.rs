//! A modifier: normalises the slug of every new room (lower case, ASCII letters and digits, single
//! dashes), derived from the display name when the backend sent none.
//!
//! Run: `cargo run -p roomhooks-sdk --example modifier [ENDPOINT]`.

use roomhooks_sdk::{App, Modification};

/// `"  Café Launch!! 2026 "` becomes `"caf-launch-2026"`.
fn slugify(raw: &str) -> String {
    let mut slug = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_owned()
}

#[tokio::main]
async fn main() -> Result<(), roomhooks_sdk::SdkError> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:50051".into());
    App::builder("slug-normaliser")
        .version(env!("CARGO_PKG_VERSION"))
        .priority(30)
        .pre_room_create_modify(|_ctx, mut room| async move {
            let source = if room.slugified_name.is_empty() {
                &room.display_name
            } else {
                &room.slugified_name
            };
            let slug = slugify(source);
            if slug == room.slugified_name {
                return Ok(Modification::Unchanged);
            }
            room.slugified_name = slug;
            Ok(Modification::Changed(room))
        })
        .build()
        .run_until(endpoint, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::slugify;

    #[test]
    fn slugs_are_lower_case_ascii_with_single_dashes() {
        assert_eq!(slugify("  Café Launch!! 2026 "), "caf-launch-2026");
        assert_eq!(slugify("general"), "general");
        assert_eq!(slugify("--"), "");
    }
}
