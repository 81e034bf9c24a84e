//! The released `roomhooks` binary, run as a child process: it starts with no configuration,
//! reports the address it bound, serves the backend API, health and reflection (v1 and
//! v1alpha), and stops cleanly on SIGTERM.

mod common;

use std::{process::Command, time::Duration};

use common::{Binary, data_dir};
use roomhooks::v1::room_hooks_client::RoomHooksClient;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// The binary with a fresh data directory, removed when the test ends.
struct Running {
    binary: Binary,
    _data: tempfile::TempDir,
}

/// Starts the binary with `args` and `env`, metrics on a free port, and waits until it logs the
/// address it bound.
fn start(args: &[&str], env: &[(&str, &str)]) -> Running {
    let (data, path) = data_dir();
    let mut args = args.to_vec();
    args.extend(["--metrics-listen", "127.0.0.1:0"]);
    Running {
        binary: Binary::start_with_env(&args, &path, env),
        _data: data,
    }
}

#[tokio::test]
async fn the_binary_serves_the_backend_api_and_health_and_stops_on_sigterm() {
    let mut running = start(&["--listen", "127.0.0.1:0"], &[]);
    let sidecar = &mut running.binary;
    assert!(sidecar.addr.starts_with("127.0.0.1:"), "{}", sidecar.addr);
    let channel = sidecar.channel().await;

    let verdict = RoomHooksClient::new(channel.clone())
        .pre_room_user_join(common::join_request("ana"))
        .await
        .expect("PreRoomUserJoin answers")
        .into_inner();
    assert!(verdict.allowed, "no app registered: allowed");

    let mut health = HealthClient::new(channel);
    for service in [
        "",
        "roomhooks.v1.RoomHooks",
        "roomhooks.v1.AppRuntime",
        "roomhooks.v1.Admin",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }

    sidecar.terminate();
    let exit = sidecar.exited(Duration::from_secs(15)).await;
    assert!(exit.success(), "clean exit, got {exit:?}");
}

#[tokio::test]
async fn the_listen_address_can_come_from_the_environment() {
    let running = start(&[], &[("ROOMHOOKS_LISTEN", "127.0.0.1:0")]);
    assert!(running.binary.addr.starts_with("127.0.0.1:"));
    let verdict = RoomHooksClient::new(running.binary.channel().await)
        .pre_room_user_join(common::join_request("ana"))
        .await
        .unwrap()
        .into_inner();
    assert!(verdict.allowed);
}

#[tokio::test]
async fn reflection_lists_the_services_over_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1, v1alpha};

    let running = start(&["--listen", "127.0.0.1:0"], &[]);
    let channel = running.binary.channel().await;

    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut replies = v1::server_reflection_client::ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        replies.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list over v1");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "roomhooks.v1.RoomHooks",
        "roomhooks.v1.AppRuntime",
        "roomhooks.v1.Admin",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }

    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                "roomhooks.v1.RoomHooks".into(),
            ),
        ),
    };
    let mut replies = v1alpha::server_reflection_client::ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap().message_response;
    assert!(
        matches!(reply, Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()),
        "v1alpha (grpcurl 1.8.6) can fetch descriptors: {reply:?}"
    );
}

#[test]
fn print_config_shows_flags_over_environment_over_file_over_defaults() {
    let file = std::env::temp_dir().join(format!("roomhooks-print-{}.toml", std::process::id()));
    std::fs::write(
        &file,
        "post_window = 8\nmax_timeout = \"30s\"\n[apps.filter]\npriority = 3\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_roomhooks"))
        .args([
            "--print-config",
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:6001",
        ])
        .env("ROOMHOOKS_MAX_TIMEOUT", "20s")
        .env("ROOMHOOKS_LISTEN", "127.0.0.1:6002")
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);

    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(
        printed.contains("listen = \"127.0.0.1:6001\""),
        "flag over env:\n{printed}"
    );
    assert!(
        printed.contains("max_timeout = \"20s\""),
        "env over file:\n{printed}"
    );
    assert!(
        printed.contains("post_window = 8"),
        "file over default:\n{printed}"
    );
    assert!(
        printed.contains("default_timeout = \"1s\""),
        "default:\n{printed}"
    );
    assert!(
        printed.contains("[apps.filter]") && printed.contains("priority = 3"),
        "{printed}"
    );
}

#[test]
fn an_invalid_config_fails_at_start_naming_the_key() {
    let file = std::env::temp_dir().join(format!("roomhooks-bad-{}.toml", std::process::id()));
    std::fs::write(&file, "max_timout = \"20s\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_roomhooks"))
        .args(["--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("max_timout"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_roomhooks"))
        .args(["--default-timeout", "1m", "--max-timeout", "10s"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--default-timeout \"1m\""));
}

#[test]
fn a_bad_file_value_and_a_bad_variable_stop_the_binary_with_code_2_saying_where_each_was_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("roomhooks.toml"),
        "listen = \"127.0.0.1:6000\"\n\nmax_timeout = \"banana\"\nmax_timout = \"5s\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_roomhooks"))
        .current_dir(dir.path())
        .args(["--config", "roomhooks.toml"])
        .env("ROOMHOOKS_POST_WINDOW", "lots")
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "roomhooks: roomhooks.toml:3:15: max_timeout = \"banana\": expected a duration like \"5s\" or \"250ms\"\n\
         roomhooks: roomhooks.toml:4:1: max_timout is not a setting; did you mean `max_timeout`?\n\
         roomhooks: ROOMHOOKS_POST_WINDOW=\"lots\": expected a whole number from 0 to 18446744073709551615\n"
    );
}

#[test]
fn a_bad_match_expression_fails_the_start_naming_the_app_the_expression_and_the_position() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("roomhooks.toml"),
        "[apps.filter]\nmatch = ['room.type == ROOM_TYPE_CHANNEL', 'room.display_name ==']\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_roomhooks"))
        .current_dir(dir.path())
        .args(["--config", "roomhooks.toml"])
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(
            "roomhooks: roomhooks.toml:2:9: apps.filter.match = ['room.type == ROOM_TYPE_CHANNEL', \
             'room.display_name ==']: match expression 2 of 2 `room.display_name ==` does not \
             compile: line 1 column 21: Syntax error"
        ),
        "{stderr}"
    );
}

#[test]
fn an_unknown_variable_is_logged_as_a_warning_naming_the_closest_one() {
    let running = start(
        &["--listen", "127.0.0.1:0"],
        &[("ROOMHOOKS_HEARTBEAT_INTERVALL", "1s")],
    );
    let log = running.binary.startup_log();
    let warning = log
        .iter()
        .find(|line| line.contains("ROOMHOOKS_HEARTBEAT_INTERVALL"))
        .unwrap_or_else(|| panic!("no warning in {log:#?}"));
    assert!(warning.contains("\"level\":\"WARN\""), "{warning}");
    assert!(
        warning.contains("did you mean `ROOMHOOKS_HEARTBEAT_INTERVAL`?"),
        "{warning}"
    );
}

/// The rows of the README's "All settings" tables: flag, default (`None` for "none") and whether
/// the row is for a build feature.
fn readme_settings() -> Vec<(String, Option<String>, bool)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("the README is next to the workspace's Cargo.toml");
    let section = readme
        .split("\n## All settings\n")
        .nth(1)
        .expect("the README has a section \"All settings\"");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter(|line| line.starts_with("| `--"))
        .map(|line| {
            let cells: Vec<&str> = line
                .split(" | ")
                .map(|c| c.trim_matches(['|', ' ']))
                .collect();
            let flag = cells[0].trim_matches('`').to_owned();
            let default = match cells[2] {
                "none" => None,
                d => Some(d.trim_matches('`').to_owned()),
            };
            (flag, default, line.contains("feature `otlp`"))
        })
        .collect()
}

/// The flags of `roomhooks --help` (but --help and --version) with their `[default: …]`.
fn help_settings() -> Vec<(String, Option<String>)> {
    let output = Command::new(env!("CARGO_BIN_EXE_roomhooks"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    let mut flags: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        let flag_line = trimmed
            .strip_prefix("-h, ")
            .or(trimmed.strip_prefix("-V, "))
            .unwrap_or(trimmed);
        if let Some(rest) = flag_line
            .strip_prefix("--")
            .filter(|_| line.starts_with("  "))
        {
            let name = rest.split([' ', '=']).next().unwrap_or_default();
            flags.push((format!("--{name}"), rest.to_owned()));
        } else if let Some((_, text)) = flags.last_mut().filter(|_| line.starts_with("          "))
        {
            text.push(' ');
            text.push_str(trimmed);
        }
    }
    flags
        .into_iter()
        .filter(|(flag, _)| flag != "--help" && flag != "--version")
        .map(|(flag, text)| {
            let default = text
                .split("[default: ")
                .nth(1)
                .and_then(|d| d.split(']').next())
                .map(str::to_owned);
            (flag, default)
        })
        .collect()
}

#[test]
fn the_readme_lists_every_flag_of_help_with_the_same_default_and_no_other() {
    let readme = readme_settings();
    let help = help_settings();
    assert!(help.len() > 30, "{help:?}");
    for (flag, default) in &help {
        let row = readme.iter().find(|(f, _, _)| f == flag);
        let Some((_, readme_default, _)) = row else {
            panic!("{flag} is in --help but not in the README's All settings");
        };
        assert_eq!(
            readme_default, default,
            "the default of {flag}: README vs --help"
        );
    }
    for (flag, _, feature) in &readme {
        assert!(
            *feature || help.iter().any(|(f, _)| f == flag),
            "{flag} is in the README's All settings but not in --help"
        );
    }
}

#[test]
fn dependencies_log_only_warnings_by_default() {
    let running = start(&["--listen", "127.0.0.1:0"], &[]);
    let log = running.binary.startup_log();
    let chatty: Vec<&String> = log
        .iter()
        .filter(|line| !line.contains("\"target\":\"roomhooks"))
        .filter(|line| {
            !line.contains("\"level\":\"WARN\"") && !line.contains("\"level\":\"ERROR\"")
        })
        .collect();
    assert!(
        chatty.is_empty(),
        "dependencies (fjall, lsm_tree, h2, …) log below warn by default: {chatty:#?}"
    );
}
