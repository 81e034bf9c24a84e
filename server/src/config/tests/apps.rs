//! The `[apps.<id>]` tables of the config file: each key read, each mistake named.

use super::*;

#[test]
fn a_bad_failure_policy_names_the_app_key_and_the_choices() {
    assert_eq!(
        file_error("[apps.filter]\nfailure_policy = \"sometimes\"\n"),
        r#"roomhooks.toml:2:18: apps.filter.failure_policy = "sometimes": expected "ignore" or "fail""#
    );
}

#[test]
fn a_bad_hook_name_lists_the_valid_ones() {
    let err = file_error("[apps.filter]\nallowed_hooks = [\"PreRoomNope\"]\n");
    assert!(
        err.starts_with(r#"roomhooks.toml:2:17: apps.filter.allowed_hooks = ["PreRoomNope"]: "PreRoomNope" is not a hook; use one of PreRoomCreatePrevent, "#),
        "{err}"
    );
    let err = file_error("[apps.filter]\nessential_hooks = [\"PreRoomCreatePrevent\", 3]\n");
    assert!(err.contains("apps.filter.essential_hooks"), "{err}");
    assert!(
        err.contains("PostRoomUserLeave"),
        "lists the valid names: {err}"
    );
}

#[test]
fn a_bad_app_timeout_names_the_app_key() {
    assert_eq!(
        file_error("[apps.filter]\ntimeout = \"soon\"\n"),
        r#"roomhooks.toml:2:11: apps.filter.timeout = "soon": expected a duration like "5s" or "250ms""#
    );
    assert_eq!(
        file_error("[apps.filter]\ntimeout = \"0s\"\n"),
        r#"roomhooks.toml:2:11: apps.filter.timeout = "0s": must be more than zero"#
    );
}

#[test]
fn the_rollout_keys_of_an_app_are_read_from_its_table() {
    let f = file(
        "[apps.filter]\nmode = \"shadow\"\nmatch = ['room.type == ROOM_TYPE_CHANNEL']\n\
         may_modify = [\"display_name\", \"custom_fields.*\"]\nmax_timeout = \"300ms\"\n",
    );
    let config = Config::load(cli(&["--config", &f.path()])).unwrap();
    let app = &config.apps["filter"];
    assert_eq!(app.mode, Some(crate::apps::rollout::Mode::Shadow));
    assert_eq!(
        app.match_conditions.sources().collect::<Vec<_>>(),
        ["room.type == ROOM_TYPE_CHANNEL"]
    );
    assert!(!app.may_modify.is_open());
    assert_eq!(app.max_timeout, Some(Duration::from_millis(300)));
}

#[test]
fn an_app_max_timeout_above_the_sidecars_is_refused() {
    assert_eq!(
        file_error("max_timeout = \"2s\"\n[apps.filter]\nmax_timeout = \"5s\"\n"),
        r#"roomhooks.toml:3:15: apps.filter.max_timeout = "5s": must be more than zero and at most max_timeout (2s)"#
    );
}

#[test]
fn a_shadow_app_cannot_be_essential() {
    let err = file_error(
        "[apps.filter]\nmode = \"shadow\"\nessential_hooks = [\"PreRoomCreatePrevent\"]\n",
    );
    assert!(
        err.contains("apps.filter.mode") && err.contains("cannot be essential"),
        "{err}"
    );
}

#[test]
fn a_bad_may_modify_field_suggests_the_closest_one() {
    let err = file_error("[apps.filter]\nmay_modify = [\"display_nmae\"]\n");
    assert!(
        err.starts_with(
            r#"roomhooks.toml:2:14: apps.filter.may_modify = ["display_nmae"]: "display_nmae" is not a room field a Modify answer may change; did you mean `display_name`?"#
        ),
        "{err}"
    );
}

#[test]
fn an_unknown_app_key_suggests_the_closest_one() {
    assert_eq!(
        file_error("[apps.filter]\nprority = 3\n"),
        "roomhooks.toml:2:1: apps.filter.prority is not an app setting; did you mean `priority`?"
    );
}

#[test]
fn an_app_table_reads_every_key_including_its_unavailable_message() {
    let f = file(
        "[apps.filter]\npriority = -3\nfailure_policy = \"fail\"\ntimeout = \"300ms\"\n\
         allowed_hooks = [\"PreRoomCreatePrevent\", \"PreRoomUserJoined\"]\n\
         essential_hooks = [\"PreRoomCreatePrevent\"]\ntoken = \"t\"\nenabled = false\n\
         unavailable_message = \"Room creation is paused: the filter is down.\"\n",
    );
    let config = Config::load(cli(&["--config", &f.path()])).unwrap();
    let app = &config.apps["filter"];
    assert_eq!(app.priority, Some(-3));
    assert_eq!(app.failure_policy, Some(FailurePolicy::Fail));
    assert_eq!(app.timeout, Some(Duration::from_millis(300)));
    assert_eq!(
        app.allowed_hooks,
        Some(vec![Hook::PreRoomCreatePrevent, Hook::PreRoomUserJoined])
    );
    assert_eq!(app.essential_hooks, [Hook::PreRoomCreatePrevent]);
    assert_eq!(app.token.as_deref(), Some("t"));
    assert_eq!(app.enabled, Some(false));
    assert_eq!(
        app.unavailable_message.as_deref(),
        Some("Room creation is paused: the filter is down.")
    );
}
