//! Every NATS name cluster mode uses, made in one place from `--cluster-name`: the streams, the
//! consumers, the KV buckets and the subjects. App and sidecar ids may hold `.`, which NATS
//! reads as a subject separator, so they appear in subjects and consumer names as a token
//! (`.` and `_` escaped as `_2e` and `_5f`): distinct ids stay distinct.

use roomhooks::v1::RoomType;

use crate::{
    hook::{Hook, HookSet, RoomTypeSet, Stage},
    ids::AppId,
};

/// The names of one cluster's NATS objects.
#[derive(Clone, Debug)]
pub struct Names {
    prefix: String,
}

impl Names {
    /// The names of the cluster called `cluster_name` (already validated: `A-Z a-z 0-9 _ -`).
    pub fn new(cluster_name: &str) -> Self {
        Self {
            prefix: cluster_name.to_owned(),
        }
    }

    /// The stream holding every accepted post event once (`<name>_posts`).
    pub fn posts_stream(&self) -> String {
        format!("{}_posts", self.prefix)
    }

    /// The stream of dead letters (`<name>_dead`).
    pub fn dead_stream(&self) -> String {
        format!("{}_dead", self.prefix)
    }

    /// The subject a post event of `hook` in a room of `room_type` is published on
    /// (`<name>.post.<hook>.<room type number>`): the room type is a subject token so an app's
    /// consumer filters on it, and JetStream never hands an app a room it does not want.
    pub fn post_subject(&self, hook: Hook, room_type: RoomType) -> String {
        format!("{}.post.{}.{}", self.prefix, hook.name(), room_type as i32)
    }

    /// The subjects an app's consumer takes: the post subjects of its post hooks (every room
    /// type, or only those it filters on), and its own retry subject.
    pub fn app_filters(&self, app: &AppId, hooks: HookSet, room_types: RoomTypeSet) -> Vec<String> {
        let mut out = Vec::new();
        for hook in hooks.iter().filter(|h| h.stage() == Stage::Post) {
            let types: Vec<RoomType> = room_types.iter().collect();
            if types.is_empty() {
                out.push(format!("{}.post.{}.*", self.prefix, hook.name()));
            } else {
                out.extend(types.into_iter().map(|t| self.post_subject(hook, t)));
            }
        }
        out.push(self.retry_subject(app));
        out
    }

    /// The subject a retried dead letter of one app is published on, which only that app's
    /// consumer takes (`<name>.retry.<app>`).
    pub fn retry_subject(&self, app: &AppId) -> String {
        format!("{}.retry.{}", self.prefix, token(app.as_str()))
    }

    /// The subject of an app's dead letters (`<name>.dead.<app>`).
    pub fn dead_subject(&self, app: &AppId) -> String {
        format!("{}.dead.{}", self.prefix, token(app.as_str()))
    }

    /// Every subject of the posts stream.
    pub fn posts_subjects(&self) -> Vec<String> {
        vec![
            format!("{}.post.>", self.prefix),
            format!("{}.retry.>", self.prefix),
        ]
    }

    /// Every subject of the dead-letter stream.
    pub fn dead_subjects(&self) -> Vec<String> {
        vec![format!("{}.dead.>", self.prefix)]
    }

    /// The durable consumer of one app's post events (`<name>_app_<app>`).
    pub fn app_consumer(&self, app: &AppId) -> String {
        format!("{}_app_{}", self.prefix, token(app.as_str()))
    }

    /// The app whose consumer is called `consumer`, if it is one of this cluster's app consumers.
    pub fn app_of_consumer(&self, consumer: &str) -> Option<AppId> {
        let escaped = consumer.strip_prefix(&format!("{}_app_", self.prefix))?;
        AppId::parse(&untoken(escaped)).ok()
    }

    /// The KV bucket of live sidecars, one key each, kept alive by heartbeats (`<name>_sidecars`).
    pub fn sidecars_bucket(&self) -> String {
        format!("{}_sidecars", self.prefix)
    }

    /// The KV bucket of app declarations: spec, enabled (`<name>_apps`).
    pub fn apps_bucket(&self) -> String {
        format!("{}_apps", self.prefix)
    }

    /// The subject Pre calls for an app are forwarded on; its queue group has the same name, so
    /// one of the sidecars holding the app's instances answers (`<name>.call.<app>`).
    pub fn call_subject(&self, app: &AppId) -> String {
        format!("{}.call.{}", self.prefix, token(app.as_str()))
    }

    /// The subject a calling sidecar withdraws a forwarded call of an app on, when its backend
    /// gave up on the call before the answer came; every sidecar serving the app listens
    /// (`<name>.cancel.<app>`).
    pub fn cancel_subject(&self, app: &AppId) -> String {
        format!("{}.cancel.{}", self.prefix, token(app.as_str()))
    }
}

/// An id as one subject token or consumer-name part: `.` and `_` escaped, everything else kept.
pub fn token(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for c in id.chars() {
        match c {
            '.' => out.push_str("_2e"),
            '_' => out.push_str("_5f"),
            c => out.push(c),
        }
    }
    out
}

/// The id a [`token`] was made from (read left to right, as it was written).
fn untoken(token: &str) -> String {
    let mut out = String::with_capacity(token.len());
    let mut rest = token;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("_2e") {
            out.push('.');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("_5f") {
            out.push('_');
            rest = after;
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_app_ids_give_distinct_tokens_without_dots() {
        let a = token("word.filter");
        let b = token("word_2efilter");
        assert_ne!(a, b);
        assert!(!a.contains('.') && !b.contains('.'));
    }

    #[test]
    fn a_token_reads_back_as_the_id_it_was_made_from() {
        for id in [
            "audit",
            "word.filter",
            "word_2efilter",
            "a__b",
            "_5f.x_",
            "a_2e_5f",
        ] {
            assert_eq!(untoken(&token(id)), id);
        }
    }

    #[test]
    fn every_name_starts_with_the_cluster_name() {
        let names = Names::new("blue");
        let app = AppId::parse("audit.v2").unwrap();
        assert_eq!(names.posts_stream(), "blue_posts");
        assert_eq!(names.app_consumer(&app), "blue_app_audit_2ev2");
        assert_eq!(
            names.app_of_consumer("blue_app_audit_2ev2"),
            Some(app.clone())
        );
        assert_eq!(names.app_of_consumer("green_app_audit_2ev2"), None);
        assert_eq!(names.call_subject(&app), "blue.call.audit_2ev2");
        assert_eq!(names.cancel_subject(&app), "blue.cancel.audit_2ev2");
        assert_eq!(
            names.post_subject(Hook::PostRoomCreate, RoomType::Channel),
            format!("blue.post.PostRoomCreate.{}", RoomType::Channel as i32)
        );
    }

    #[test]
    fn an_app_filters_on_its_post_hooks_room_types_and_retry_subject() {
        let names = Names::new("blue");
        let app = AppId::parse("audit").unwrap();
        let hooks = HookSet::of([Hook::PostRoomCreate, Hook::PreRoomCreatePrevent]);
        assert_eq!(
            names.app_filters(&app, hooks, RoomTypeSet::default()),
            ["blue.post.PostRoomCreate.*", "blue.retry.audit"]
        );
        let mut channels = RoomTypeSet::default();
        channels.insert(RoomType::Channel);
        assert_eq!(
            names.app_filters(&app, hooks, channels),
            [
                names.post_subject(Hook::PostRoomCreate, RoomType::Channel),
                "blue.retry.audit".to_owned()
            ]
        );
    }
}
