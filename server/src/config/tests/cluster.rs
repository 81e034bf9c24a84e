//! The `[cluster]` table and the cluster flags.

use super::*;

#[test]
fn the_cluster_table_of_the_file_sets_the_cluster_flags() {
    let f = file(
        "[cluster]\nurl = \"nats://10.0.0.1:4222,nats://10.0.0.2:4222\"\nname = \"blue\"\n\
         sidecar_id = \"pod-7\"\nreplicas = 3\nwait = \"forever\"\n",
    );
    let config = Config::load(cli(&["--config", &f.path()])).unwrap();
    assert_eq!(
        config.cluster_url.as_deref(),
        Some("nats://10.0.0.1:4222,nats://10.0.0.2:4222")
    );
    assert_eq!(config.cluster_name, "blue");
    assert_eq!(config.sidecar_id.as_deref(), Some("pod-7"));
    assert_eq!(config.cluster_replicas, 3);
    assert_eq!(config.cluster_wait, ClusterWait::Forever);
}

#[test]
fn an_unknown_key_of_the_cluster_table_is_named_with_its_line_and_a_suggestion() {
    let err = file_error("[cluster]\nurl = \"nats://x:4222\"\nreplica = 3\n");
    assert!(
        err.contains("roomhooks.toml:3:1")
            && err.contains("cluster.replica is not a cluster setting"),
        "{err}"
    );
    assert!(err.contains("did you mean `replicas`"), "{err}");
}

#[test]
fn cluster_settings_that_cannot_work_are_refused_naming_the_setting() {
    let refused = |args: &[&str]| Config::load(cli(args)).unwrap_err().to_string();
    let url = ["--cluster-url", "nats://127.0.0.1:4222"];
    let with = |more: &[&'static str]| [&url[..], more].concat();
    assert!(refused(&with(&["--cluster-replicas", "0"])).contains("must be 1 to 5"));
    assert!(refused(&with(&["--cluster-user", "u"])).contains("cluster_password go together"));
    assert!(refused(&with(&["--cluster-name", "a.b"])).contains("use only A-Z a-z 0-9 _ -"));
    assert!(refused(&["--cluster-url", "nats://a:1,,nats://b:2"]).contains("empty address"));
}
