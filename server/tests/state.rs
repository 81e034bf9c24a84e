//! Two sidecars on one host, and state that would surprise an operator: each clash names what
//! clashed, and what a sidecar remembers from an earlier run is said at start.

mod common;

use std::time::Duration;

use common::{Binary, data_dir, run_to_exit};
use roomhooks_sdk::{App, proto::FailurePolicy};

#[test]
fn a_port_clash_names_the_flag_of_the_port_that_clashed() {
    let (_dir, path) = data_dir();
    let first = Binary::start(&["--metrics-listen", "127.0.0.1:0"], &path);
    let line = first
        .log_line("\"metrics_addr\":\"")
        .expect("the metrics address is logged");
    let metrics = line
        .split("\"metrics_addr\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();

    let (_other, other_path) = data_dir();
    let (status, stderr) = run_to_exit(
        &["--listen", "127.0.0.1:0", "--metrics-listen", &metrics],
        &other_path,
    );
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {metrics}"))
            && stderr.contains("pick another with --metrics-listen"),
        "{stderr}"
    );

    let (status, stderr) = run_to_exit(
        &["--listen", &first.addr, "--metrics-listen", "off"],
        &other_path,
    );
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("pick another with --listen"), "{stderr}");
}

#[test]
fn a_data_directory_held_by_a_running_sidecar_is_refused_naming_it_and_its_pid() {
    let (_dir, path) = data_dir();
    let first = Binary::start(&[], &path);

    let (status, stderr) = run_to_exit(
        &["--listen", "127.0.0.1:0", "--metrics-listen", "off"],
        &path,
    );

    assert!(!status.success(), "{stderr}");
    let absolute = std::path::absolute(&path).unwrap();
    assert!(
        stderr.contains(&format!(
            "{} is in use by another roomhooks process (pid {}); use another --data-dir or --ephemeral",
            absolute.display(),
            first.pid()
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Locked"),
        "no bare library error: {stderr}"
    );
}

#[tokio::test]
async fn apps_remembered_from_an_earlier_run_are_listed_at_start() {
    let (_dir, path) = data_dir();
    let mut first = Binary::start(&[], &path);
    let mut app = App::builder("word-filter")
        .failure_policy(FailurePolicy::Fail)
        .pre_room_create_prevent(|_, _| async { Ok(roomhooks_sdk::Veto::Allow) })
        .build()
        .spawn(first.endpoint());
    tokio::time::timeout(Duration::from_secs(30), app.registered())
        .await
        .expect("registers in time")
        .expect("registers");
    first.terminate();
    assert!(first.exited(Duration::from_secs(15)).await.success());
    app.abort();

    let second = Binary::start(&[], &path);
    let absolute = std::path::absolute(&path).unwrap();
    let line = second
        .log_line("remembering")
        .unwrap_or_else(|| panic!("no 'remembering' line in:\n{}", second.log().join("\n")));
    assert!(
        line.contains(&format!(
            "remembering 1 app from {}: word-filter (FAIL); Admin.RemoveApp forgets one",
            absolute.display()
        )),
        "{line}"
    );
}

#[test]
fn open_mode_says_at_start_that_any_process_can_register_app_ids() {
    let (_dir, path) = data_dir();
    let sidecar = Binary::start(&[], &path);
    assert!(
        sidecar.logged("any process that can reach the sidecar can register any app id"),
        "{}",
        sidecar.log().join("\n")
    );
}

#[tokio::test]
async fn an_app_idle_for_forget_apps_after_is_forgotten_but_a_configured_fail_app_is_kept() {
    use roomhooks_sdk::proto::{ListAppsRequest, admin_client::AdminClient};
    let (dir, path) = data_dir();
    let config = dir.path().join("roomhooks.toml");
    std::fs::write(&config, "[apps.keeper]\nfailure_policy = \"fail\"\n").unwrap();
    let config = config.to_string_lossy().into_owned();
    let sidecar = Binary::start(
        &["--forget-apps-after", "1s", "--config", &config],
        &path.join("data"),
    );
    for app_id in ["drifter", "keeper"] {
        let mut app = App::builder(app_id)
            .pre_room_user_joined(|_, _| async { Ok(()) })
            .build()
            .spawn(sidecar.endpoint());
        tokio::time::timeout(Duration::from_secs(30), app.registered())
            .await
            .expect("registers in time")
            .expect("registers");
        app.shutdown().await.expect("leaves cleanly");
    }

    let mut admin = AdminClient::new(sidecar.channel().await);
    let known = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let apps: Vec<String> = admin
                .list_apps(ListAppsRequest::default())
                .await
                .expect("ListApps")
                .into_inner()
                .apps
                .into_iter()
                .map(|a| a.app_id)
                .collect();
            if !apps.iter().any(|a| a == "drifter") {
                return apps;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the idle app is forgotten within the bound");
    assert_eq!(
        known,
        vec!["keeper".to_owned()],
        "a FAIL app configured in the file stays"
    );
    assert!(
        sidecar.logged("forgot an app"),
        "{}",
        sidecar.log().join("\n")
    );
}
