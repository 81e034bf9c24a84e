use super::*;
use crate::{apps::spec::FailurePolicy, hook::Hook};

mod apps;
mod cluster;

/// The command line `args` with no environment.
fn cli(args: &[&str]) -> Cli {
    cli_env(args, &[])
}

/// The command line `args` with the variables `env`.
fn cli_env(args: &[&str], env: &[(&str, &str)]) -> Cli {
    Cli::try_parse_with_env(
        std::iter::once("roomhooks").chain(args.iter().copied()),
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .expect("the command line parses")
}

/// A config file in a temporary directory, named `roomhooks.toml`.
struct File {
    dir: tempfile::TempDir,
}

impl File {
    fn path(&self) -> String {
        self.dir.path().join("roomhooks.toml").display().to_string()
    }
}

fn file(text: &str) -> File {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(dir.path().join("roomhooks.toml"), text).expect("the file is written");
    File { dir }
}

/// The error of loading `text` as the config file, with the file's directory cut from it.
fn file_error(text: &str) -> String {
    let f = file(text);
    let err = Config::load(cli(&["--config", &f.path()])).unwrap_err();
    let dir = format!("{}/", f.dir.path().display());
    err.all()
        .map(|e| e.to_string().replace(&dir, ""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_auto_runtime_is_current_thread_on_two_cores_or_fewer() {
    assert_eq!(RuntimeFlavor::Auto.resolve(1), RuntimeFlavor::CurrentThread);
    assert_eq!(RuntimeFlavor::Auto.resolve(2), RuntimeFlavor::CurrentThread);
    assert_eq!(RuntimeFlavor::Auto.resolve(4), RuntimeFlavor::MultiThread);
    assert_eq!(
        RuntimeFlavor::MultiThread.resolve(2),
        RuntimeFlavor::MultiThread,
        "an explicit choice stands"
    );
    let config = Config::load(cli(&[])).unwrap();
    assert_eq!(config.runtime, RuntimeFlavor::Auto, "unset means auto");
    let config = Config::load(cli(&["--runtime", "current-thread"])).unwrap();
    assert_eq!(config.runtime, RuntimeFlavor::CurrentThread);
}

#[test]
fn defaults_need_no_configuration_and_are_valid() {
    let config = Config::load(Cli::default()).unwrap();
    assert_eq!(config.listen, Config::default().listen);
    assert_eq!(config.timeouts.max, Duration::from_secs(10));
    assert_eq!(config.liveness.timeout, Duration::from_secs(8));
    assert_eq!(config.max_message_size, 4 * 1024 * 1024);
    assert_eq!(config.worker_threads, None);
    assert!(!config.ephemeral);
    assert!(config.warnings.is_empty());
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_file_which_wins_over_defaults() {
    let f = file(
        "listen = \"127.0.0.1:6000\"\nmax_timeout = \"20s\"\npost_window = 8\neject_after = 3\n",
    );
    let config = Config::load(cli_env(
        &["--config", &f.path(), "--listen", "127.0.0.1:7000"],
        &[
            ("ROOMHOOKS_LISTEN", "127.0.0.1:6500"),
            ("ROOMHOOKS_POST_WINDOW", "16"),
        ],
    ))
    .unwrap();
    assert_eq!(config.listen.port(), 7000, "flag over variable and file");
    assert_eq!(config.post.window, 16, "variable over file");
    assert_eq!(
        config.timeouts.max,
        Duration::from_secs(20),
        "file over default"
    );
    assert_eq!(config.calls.ejection.after, 3);
    assert_eq!(config.timeouts.default, Duration::from_secs(1), "default");
}

#[test]
fn the_config_file_can_come_from_its_variable() {
    let f = file("post_window = 8\n");
    let config = Config::load(cli_env(&[], &[("ROOMHOOKS_CONFIG", &f.path())])).unwrap();
    assert_eq!(config.post.window, 8);
}

#[test]
fn a_bad_duration_in_the_file_names_the_key_line_and_column() {
    assert_eq!(
        file_error("listen = \"127.0.0.1:6000\"\n\nmax_timeout = \"banana\"\n"),
        r#"roomhooks.toml:3:15: max_timeout = "banana": expected a duration like "5s" or "250ms""#
    );
}

#[test]
fn a_bad_address_in_the_file_names_the_key_line_and_column() {
    assert_eq!(
        file_error("listen = \"localhost\"\n"),
        r#"roomhooks.toml:1:10: listen = "localhost": expected an address like 127.0.0.1:50051"#
    );
}

#[test]
fn an_integer_out_of_range_names_the_key_and_the_range() {
    assert_eq!(
        file_error("post_max_attempts = -1\n"),
        "roomhooks.toml:1:21: post_max_attempts = -1: expected a whole number from 0 to 4294967295"
    );
}

#[test]
fn a_value_refused_by_validation_names_where_it_was_written() {
    assert_eq!(
        file_error("post_window = 0\n"),
        "roomhooks.toml:1:15: post_window = 0: must be at least 1"
    );
}

#[test]
fn every_bad_value_of_the_file_is_reported_at_once() {
    let errors = file_error("max_timeout = \"x\"\npost_window = \"y\"\n");
    assert_eq!(errors.lines().count(), 2, "{errors}");
    assert!(
        errors.contains("roomhooks.toml:1:15: max_timeout"),
        "{errors}"
    );
    assert!(
        errors.contains("roomhooks.toml:2:15: post_window"),
        "{errors}"
    );
}

#[test]
fn an_unknown_key_suggests_the_closest_setting() {
    assert_eq!(
        file_error("listen = \"127.0.0.1:6000\"\nmax_timout = \"20s\"\n"),
        "roomhooks.toml:2:1: max_timout is not a setting; did you mean `max_timeout`?"
    );
}

#[test]
fn a_file_that_is_not_toml_says_where() {
    let err = file_error("listen = \n");
    assert!(err.starts_with("roomhooks.toml:1:"), "{err}");
    assert!(err.ends_with("(not valid TOML)"), "{err}");
}

#[test]
fn a_bad_environment_value_names_the_variable() {
    let err = Config::load(cli_env(&[], &[("ROOMHOOKS_MAX_TIMEOUT", "banana")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"ROOMHOOKS_MAX_TIMEOUT="banana": expected a duration like "5s" or "250ms""#
    );
    assert_eq!(err.key, "max_timeout");
}

#[test]
fn a_flag_wins_over_a_bad_variable() {
    let config = Config::load(cli_env(
        &["--max-timeout", "3s"],
        &[("ROOMHOOKS_MAX_TIMEOUT", "banana")],
    ))
    .unwrap();
    assert_eq!(config.timeouts.max, Duration::from_secs(3));
}

#[test]
fn a_bad_flag_value_names_the_flag() {
    let err = Config::load(cli(&["--post-window", "many"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"--post-window "many": expected a whole number from 0 to 18446744073709551615"#
    );
}

#[test]
fn an_unknown_variable_is_a_warning_naming_the_closest_one() {
    let config = Config::load(cli_env(
        &[],
        &[("ROOMHOOKS_MAX_TIMOUT", "5s"), ("HOME", "/root")],
    ))
    .unwrap();
    assert_eq!(
        config.warnings,
        [
            "ROOMHOOKS_MAX_TIMOUT is not a roomhooks setting and is ignored; did you mean `ROOMHOOKS_MAX_TIMEOUT`?"
        ]
    );
    assert_eq!(config.timeouts.max, Duration::from_secs(10), "ignored");
}

#[test]
fn a_default_timeout_above_the_max_is_refused_by_name() {
    let err = Config::load(cli(&["--default-timeout", "30s"])).unwrap_err();
    assert_eq!(err.key, "default_timeout");
    assert_eq!(
        err.to_string(),
        r#"--default-timeout "30s": must be more than zero and at most max_timeout"#
    );
}

#[test]
fn forget_apps_after_defaults_to_a_week_and_zero_means_never() {
    assert_eq!(
        Config::default().forget_apps_after,
        Duration::from_secs(7 * 24 * 3600)
    );
    let config = Config::load(cli(&["--forget-apps-after", "0"])).unwrap();
    assert_eq!(config.forget_apps_after, Duration::ZERO);
    let f = file("forget_apps_after = \"1h\"\n");
    let config = Config::load(cli(&["--config", &f.path()])).unwrap();
    assert_eq!(config.forget_apps_after, Duration::from_secs(3600));
    let config = Config::load(cli_env(&[], &[("ROOMHOOKS_FORGET_APPS_AFTER", "2d")])).unwrap();
    assert_eq!(config.forget_apps_after, Duration::from_secs(2 * 24 * 3600));
}

#[test]
fn printed_configs_redact_tokens_and_round_trip() {
    let config = Config::load(cli(&[
        "--backend-token",
        "s3cret",
        "--app-token",
        "filter=t0k",
    ]))
    .unwrap();
    let printed = config.to_toml();
    assert!(
        !printed.contains("s3cret") && !printed.contains("t0k"),
        "{printed}"
    );
    assert!(printed.contains("<redacted>"));
    assert!(config.has_tokens());
    let f = file(&printed.replace("\"<redacted>\"", "\"x\""));
    let reparsed = Config::load(cli(&["--config", &f.path()])).unwrap();
    assert_eq!(reparsed.listen, config.listen);
    assert_eq!(reparsed.forget_apps_after, config.forget_apps_after);
    assert_eq!(reparsed.apps["filter"].token.as_deref(), Some("x"));
}

#[test]
fn printed_configs_leave_out_empty_tables() {
    let printed = Config::default().to_toml();
    assert!(!printed.contains("[apps"), "{printed}");
}

#[test]
fn help_groups_every_setting_under_its_heading_with_its_variable_and_default() {
    let help = Cli::command().render_help().to_string();
    for heading in [
        heading::LISTENING,
        heading::TIMEOUTS,
        heading::POST_EVENTS,
        heading::LIVENESS,
        heading::LIMITS,
        heading::SECURITY,
        heading::OBSERVABILITY,
    ] {
        assert!(
            help.contains(&format!("{heading}:")),
            "{heading} in\n{help}"
        );
    }
    for setting in SETTINGS {
        assert!(
            help.contains(&setting.flag()),
            "{} in\n{help}",
            setting.flag()
        );
        assert!(
            help.contains(&setting.env()),
            "{} in\n{help}",
            setting.env()
        );
    }
    assert!(help.contains("[default: 10s]"), "{help}");
    assert!(help.contains("--app-token"), "{help}");
    #[cfg(feature = "otlp")]
    assert!(help.contains("--otlp-endpoint"), "{help}");
}

#[test]
fn app_tokens_come_from_repeated_or_comma_separated_flags_else_the_variable() {
    let config = Config::load(cli(&["--app-token", "a=x,b=y", "--app-token", "c=z"])).unwrap();
    let tokens: Vec<_> = config
        .apps
        .iter()
        .map(|(id, app)| (id.as_str(), app.token.as_deref()))
        .collect();
    assert_eq!(
        tokens,
        [("a", Some("x")), ("b", Some("y")), ("c", Some("z"))]
    );
    let config = Config::load(cli_env(&[], &[("ROOMHOOKS_APP_TOKENS", "a=x,b=y")])).unwrap();
    assert_eq!(config.apps.len(), 2);
    let err = Config::load(cli(&["--app-token", "nonsense"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"--app-token "nonsense": expected APP_ID=TOKEN"#
    );
}

#[test]
fn integers_may_be_written_with_underscores_or_in_hex_as_toml_allows() {
    let f = file("post_queue_max_events = 100_000\nmax_message_size = 0x100000\n");
    let config = Config::load(cli(&["--config", &f.path()])).unwrap();
    assert_eq!(config.post.max_queued, 100_000);
    assert_eq!(config.max_message_size, 1 << 20);
}
