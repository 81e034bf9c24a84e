//! Cluster mode, Pre hooks and the shared registry: apps connected at one sidecar answer calls
//! made at another (forwarded over NATS request-reply), exactly as if they were local; every
//! sidecar knows every app, and operator changes at one apply at all. Real nats-server, real
//! sidecars, real SDK apps.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::{
    Harness,
    cluster::{cluster_name, has_instance_at, sidecars},
    dawdler, flag_set_within, join_request,
    nats::NatsCluster,
    new_room,
    raw::{RawApp, register},
    statuses, within,
};
use prost_types::Value;
use roomhooks_sdk::{
    App, Extension, HookError, Modification,
    proto::{
        FailurePolicy, HookInterface, OutcomeStatus, PreRoomCreateRequest, PreventionReason,
        Register, RemoveAppRequest, RoomType, SetAppEnabledRequest, admin_client::AdminClient,
    },
};

/// An app that refuses `banned` and counts its calls.
fn bouncer(app_id: &str, banned: &'static str, calls: Arc<AtomicUsize>) -> App {
    App::builder(app_id)
        .pre_room_user_joined(move |_, joined| {
            calls.fetch_add(1, Ordering::Relaxed);
            let refuse = joined
                .joining_user
                .as_ref()
                .is_some_and(|u| u.username == banned);
            async move {
                if refuse {
                    Err(HookError::UserNotAllowed(format!("{banned} is banned")))
                } else {
                    Ok(())
                }
            }
        })
        .build()
}

/// A Modify app at `priority` that appends " (<priority>)" to the room's display name.
fn renamer(app_id: &str, priority: i32) -> App {
    App::builder(app_id)
        .priority(priority)
        .pre_room_create_modify(move |_, mut room| async move {
            room.display_name = format!("{} ({priority})", room.display_name);
            Ok(Modification::Changed(room))
        })
        .build()
}

fn create_request(name: &str) -> PreRoomCreateRequest {
    PreRoomCreateRequest {
        room: Some(new_room(name, RoomType::Channel)),
        dry_run: false,
        request_id: String::new(),
    }
}

#[tokio::test]
async fn a_veto_from_an_app_connected_at_another_sidecar_prevents_the_join_and_names_that_sidecar()
{
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("veto");
    let s = sidecars(&nats.urls(), &name, 2, |_, _| {}).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let _app = s[1]
        .app(bouncer("bouncer", "mallory", Arc::clone(&calls)))
        .await;
    s[0].wait_for_instance_at("bouncer", "s1").await;
    let backend = s[0].backend().await;

    let refused = within(backend.pre_room_user_join(join_request("mallory")))
        .await
        .unwrap();
    let allowed = within(backend.pre_room_user_join(join_request("alice")))
        .await
        .unwrap();

    assert!(!refused.allowed);
    assert_eq!(refused.preventions[0].message, "mallory is banned");
    assert_eq!(
        refused.outcomes[0].sidecar_id, "s1",
        "the serving sidecar is named"
    );
    assert!(!refused.outcomes[0].instance_id.is_empty());
    assert!(allowed.allowed);
    assert_eq!(
        calls.load(Ordering::Relaxed),
        2,
        "both calls reached the app at s1"
    );
}

#[tokio::test]
async fn vetoes_from_apps_at_two_other_sidecars_are_all_reported_in_app_order() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("parallel");
    let s = sidecars(&nats.urls(), &name, 3, |_, _| {}).await;
    let refuse = |id: &str, priority: i32| {
        let message = format!("{id} says no");
        App::builder(id)
            .priority(priority)
            .pre_room_user_joined(move |_, _| {
                let message = message.clone();
                async move { Err(HookError::UserNotAllowed(message)) }
            })
            .build()
    };
    let _late = s[2].app(refuse("zeta", 20)).await;
    let _early = s[1].app(refuse("alpha", 10)).await;
    s[0].wait_for_instance_at("zeta", "s2").await;
    s[0].wait_for_instance_at("alpha", "s1").await;

    let response = within(s[0].backend().await.pre_room_user_join(join_request("bob")))
        .await
        .unwrap();

    assert!(!response.allowed);
    assert_eq!(
        statuses(&response.outcomes),
        [
            ("alpha", OutcomeStatus::Prevented),
            ("zeta", OutcomeStatus::Prevented)
        ]
    );
    assert_eq!(response.preventions[0].message, "alpha says no");
    let served: Vec<&str> = response
        .outcomes
        .iter()
        .map(|o| o.sidecar_id.as_str())
        .collect();
    assert_eq!(served, ["s1", "s2"]);
}

#[tokio::test]
async fn extend_and_modify_answers_from_remote_apps_are_merged_and_chained_as_if_local() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("extmod");
    let s = sidecars(&nats.urls(), &name, 3, |_, _| {}).await;
    let _extender = s[1]
        .app(
            App::builder("tagger")
                .pre_room_create_extend(|_, _| async {
                    Ok(Extension::new().field("tier", "gold").member("helper-bot"))
                })
                .build(),
        )
        .await;
    let _first = s[1].app(renamer("a-rename", 1)).await;
    let _second = s[2].app(renamer("b-rename", 2)).await;
    for (app, at) in [("tagger", "s1"), ("a-rename", "s1"), ("b-rename", "s2")] {
        s[0].wait_for_instance_at(app, at).await;
    }

    let response = within(
        s[0].backend()
            .await
            .pre_room_create(create_request("Launch")),
    )
    .await
    .unwrap();

    assert!(response.allowed);
    let room = response.room.unwrap();
    assert_eq!(
        room.display_name, "Launch (1) (2)",
        "each modifier saw the previous one's room"
    );
    assert_eq!(
        room.custom_fields.unwrap().fields["tier"],
        Value::from("gold")
    );
    assert_eq!(room.member_usernames, ["owner", "helper-bot"]);
}

#[tokio::test]
async fn a_remote_app_slower_than_its_timeout_times_out_and_its_failure_policy_applies() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("timeout");
    let s = sidecars(&nats.urls(), &name, 2, |_, _| {}).await;
    let _slow = s[1]
        .app(
            App::builder("slowpoke")
                .failure_policy(FailurePolicy::Fail)
                .timeout(Duration::from_millis(200))
                .pre_room_user_joined(|_, _| async {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    Ok(())
                })
                .build(),
        )
        .await;
    s[0].wait_for_instance_at("slowpoke", "s1").await;

    let response = within(
        s[0].backend()
            .await
            .pre_room_user_join(join_request("carol")),
    )
    .await
    .unwrap();

    assert!(!response.allowed, "a FAIL app that timed out prevents");
    assert_eq!(response.outcomes[0].status, OutcomeStatus::Timeout as i32);
    assert_eq!(
        response.preventions[0].reason,
        PreventionReason::AppUnavailable as i32
    );
}

#[tokio::test]
async fn a_call_the_backend_gives_up_on_is_withdrawn_from_the_app_at_the_other_sidecar() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("withdraw");
    let s = sidecars(&nats.urls(), &name, 2, |_, _| {}).await;
    let (started, cancelled) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let _dawdler = s[1]
        .app(dawdler(
            Duration::from_secs(10),
            Arc::clone(&started),
            Arc::clone(&cancelled),
        ))
        .await;
    s[0].wait_for_instance_at("dawdler", "s1").await;
    let backend = s[0].backend().await;

    // The backend cancels its RPC once the app at s1 is working on it.
    let call = tokio::spawn(async move { backend.pre_room_user_join(join_request("dora")).await });
    assert!(
        flag_set_within(&started, Duration::from_secs(10)).await,
        "the forwarded call did not reach the app"
    );
    call.abort();

    // Long before the app's 10 s timeout would have cancelled it at s1.
    assert!(
        flag_set_within(&cancelled, Duration::from_secs(3)).await,
        "the app at s1 was not told the backend gave up on the call"
    );
}

#[tokio::test]
async fn a_fail_app_that_left_the_other_sidecar_keeps_protecting_calls_here_until_removed() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("failapp");
    let s = sidecars(&nats.urls(), &name, 2, |_, _| {}).await;
    let guardian = s[1]
        .app(
            App::builder("guardian")
                .failure_policy(FailurePolicy::Fail)
                .pre_room_user_joined(|_, _| async { Ok(()) })
                .build(),
        )
        .await;
    s[0].wait_for_instance_at("guardian", "s1").await;
    guardian.shutdown().await.unwrap();
    s[0].wait_for_apps("guardian has no instance anywhere", |list| {
        list.apps
            .iter()
            .any(|a| a.app_id == "guardian" && a.instances.is_empty())
    })
    .await;
    let backend = s[0].backend().await;

    let protected = within(backend.pre_room_user_join(join_request("erin")))
        .await
        .unwrap();
    AdminClient::new(s[1].channel().await)
        .remove_app(RemoveAppRequest {
            app_id: "guardian".into(),
        })
        .await
        .unwrap();
    s[0].wait_for_apps("guardian is forgotten here too", |list| {
        list.apps.iter().all(|a| a.app_id != "guardian")
    })
    .await;
    let after = within(backend.pre_room_user_join(join_request("erin")))
        .await
        .unwrap();

    assert!(
        !protected.allowed,
        "the FAIL app connected nowhere prevents at s0"
    );
    assert_eq!(
        protected.outcomes[0].status,
        OutcomeStatus::Unavailable as i32
    );
    assert!(
        after.allowed && after.outcomes.is_empty(),
        "removed at s1: gone at s0"
    );
}

#[tokio::test]
async fn a_fail_app_declared_at_one_sidecar_is_known_at_a_sidecar_started_later() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("latecomer");
    let first = sidecars(&nats.urls(), &name, 1, |_, _| {}).await;
    let guardian = first[0]
        .app(
            App::builder("guardian")
                .failure_policy(FailurePolicy::Fail)
                .pre_room_user_joined(|_, _| async { Ok(()) })
                .build(),
        )
        .await;
    guardian.shutdown().await.unwrap();
    let late =
        Harness::start_with(|config| common::cluster::join(config, &nats.urls(), &name, 7)).await;
    late.wait_for_apps("guardian is known", |list| {
        list.apps.iter().any(|a| a.app_id == "guardian")
    })
    .await;

    let response = within(
        late.backend()
            .await
            .pre_room_user_join(join_request("erin")),
    )
    .await
    .unwrap();

    assert!(!response.allowed);
    assert_eq!(
        response.outcomes[0].status,
        OutcomeStatus::Unavailable as i32
    );
}

#[tokio::test]
async fn a_local_instance_is_preferred_over_one_at_another_sidecar() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("local");
    let s = sidecars(&nats.urls(), &name, 2, |_, _| {}).await;
    let (here, there) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let _remote = s[1]
        .app(bouncer("bouncer", "nobody", Arc::clone(&there)))
        .await;
    let _local = s[0]
        .app(bouncer("bouncer", "nobody", Arc::clone(&here)))
        .await;
    s[0].wait_for_instance_at("bouncer", "s1").await;
    let backend = s[0].backend().await;

    for _ in 0..10 {
        let response = within(backend.pre_room_user_join(join_request("alice")))
            .await
            .unwrap();
        assert_eq!(response.outcomes[0].sidecar_id, "s0");
    }

    assert_eq!(here.load(Ordering::Relaxed), 10);
    assert_eq!(there.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn disabling_an_app_at_one_sidecar_takes_effect_at_the_others() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("disable");
    let s = sidecars(&nats.urls(), &name, 2, |_, _| {}).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let _app = s[1]
        .app(bouncer("bouncer", "mallory", Arc::clone(&calls)))
        .await;
    s[0].wait_for_instance_at("bouncer", "s1").await;

    let asked = Instant::now();
    AdminClient::new(s[0].channel().await)
        .set_app_enabled(SetAppEnabledRequest {
            app_id: "bouncer".into(),
            enabled: false,
        })
        .await
        .unwrap();
    s[1].wait_for_apps("bouncer is disabled at s1", |list| {
        list.apps
            .iter()
            .any(|a| a.app_id == "bouncer" && !a.enabled)
    })
    .await;
    println!(
        "SetAppEnabled at s0 was applied at s1 after {:?}",
        asked.elapsed()
    );
    let at_s1 = within(
        s[1].backend()
            .await
            .pre_room_user_join(join_request("mallory")),
    )
    .await
    .unwrap();

    assert!(at_s1.allowed, "a disabled app is not called");
    assert_eq!(calls.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn an_instance_registered_differently_from_one_at_another_sidecar_is_refused() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("mismatch");
    let s = sidecars(&nats.urls(), &name, 2, |_, _| {}).await;
    let joiner = |instance_id: &str, priority: i32| Register {
        instance_id: instance_id.into(),
        priority,
        ..register("filter", &[HookInterface::PreRoomUserJoined])
    };
    let _first = RawApp::register(s[0].channel().await, joiner("one", 5))
        .await
        .unwrap();
    s[1].wait_for_instance_at("filter", "s0").await;

    let refused = RawApp::register(s[1].channel().await, joiner("two", 7))
        .await
        .err()
        .expect("the mismatching instance is refused");

    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains("priority 5 vs 7"),
        "{}",
        refused.message()
    );
}

#[tokio::test]
async fn list_apps_and_list_sidecars_at_any_sidecar_show_the_whole_cluster() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("admin");
    let s = sidecars(&nats.urls(), &name, 3, |_, _| {}).await;
    let _a = s[1].app(bouncer("bouncer", "x", Arc::default())).await;
    let _b = s[2].app(bouncer("bouncer", "x", Arc::default())).await;
    s[0].wait_for_instance_at("bouncer", "s2").await;
    s[0].wait_for_instance_at("bouncer", "s1").await;

    let list = s[0].list_apps().await;
    let ids = s[0].sidecar_ids().await;

    assert!(has_instance_at(&list, "bouncer", "s1") && has_instance_at(&list, "bouncer", "s2"));
    assert_eq!(ids, ["s0", "s1", "s2"]);
}

/// The health status of the NATS connection at `h` (the `roomhooks.cluster` entry).
async fn nats_health(h: &Harness) -> i32 {
    tonic_health::pb::health_client::HealthClient::new(h.channel().await)
        .check(tonic_health::pb::HealthCheckRequest {
            service: "roomhooks.cluster".into(),
        })
        .await
        .map(|r| r.into_inner().status)
        .unwrap_or(-1)
}

/// Waits until `h` reports the NATS connection as `status`.
async fn wait_for_nats_health(
    h: &Harness,
    status: tonic_health::pb::health_check_response::ServingStatus,
) {
    for _ in 0..300 {
        if nats_health(h).await == status as i32 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("health of roomhooks.cluster never became {status:?}");
}

#[tokio::test]
async fn while_nats_is_down_local_apps_still_answer_and_remote_only_apps_count_as_unavailable() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let mut nats = NatsCluster::start(1).await;
    let name = cluster_name("natsdown");
    let s = sidecars(&nats.urls(), &name, 2, |_, _| {}).await;
    let _local = s[0]
        .app(bouncer("local-bouncer", "mallory", Arc::default()))
        .await;
    let _remote = s[1]
        .app(bouncer("remote-bouncer", "nobody", Arc::default()))
        .await;
    s[0].wait_for_instance_at("remote-bouncer", "s1").await;
    let backend = s[0].backend().await;

    nats.stop_all();
    wait_for_nats_health(&s[0], ServingStatus::NotServing).await;
    let during = within(backend.pre_room_user_join(join_request("mallory")))
        .await
        .unwrap();
    nats.start_all().await;
    wait_for_nats_health(&s[0], ServingStatus::Serving).await;
    let mut after = None;
    for _ in 0..100 {
        let response = within(backend.pre_room_user_join(join_request("alice")))
            .await
            .unwrap();
        if statuses(&response.outcomes).contains(&("remote-bouncer", OutcomeStatus::Allowed)) {
            after = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert!(!during.allowed, "the local app still vetoes");
    assert_eq!(
        statuses(&during.outcomes),
        [
            ("local-bouncer", OutcomeStatus::Prevented),
            ("remote-bouncer", OutcomeStatus::Unavailable)
        ]
    );
    let after = after.expect("the remote app answers again once NATS is back");
    assert!(after.allowed);
}

#[tokio::test]
async fn an_app_given_several_sidecars_moves_to_another_when_its_sidecar_goes_away() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("rotate");
    let mut s = sidecars(&nats.urls(), &name, 2, |_, _| {}).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let endpoints = format!("{},{}", s[0].endpoint, s[1].endpoint);
    let app = App::builder("bouncer")
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .pre_room_user_joined({
            let calls = Arc::clone(&calls);
            move |_, _| {
                calls.fetch_add(1, Ordering::Relaxed);
                async { Ok(()) }
            }
        })
        .build();
    let mut handle = app.spawn(endpoints);
    within(handle.registered())
        .await
        .expect("registers at the first sidecar");
    s[1].wait_for_instance_at("bouncer", "s0").await;

    let first = s.remove(0);
    first.sidecar.shutdown().await.expect("s0 shuts down");
    s[0].wait_for_instance_at("bouncer", "s1").await;
    let response = within(
        s[0].backend()
            .await
            .pre_room_user_join(join_request("alice")),
    )
    .await
    .unwrap();

    assert_eq!(
        statuses(&response.outcomes),
        [("bouncer", OutcomeStatus::Allowed)]
    );
    assert_eq!(
        response.outcomes[0].sidecar_id, "s1",
        "answered by the instance now at s1"
    );
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}
