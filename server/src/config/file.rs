//! Reading the `--config` file: every key is looked up in the settings table (or the keys of an
//! `[apps.<id>]` table) and parsed by its setting, and every problem is reported with the file's
//! `path:line:column` and the value as written, all of them in one pass.

use std::path::Path;

use toml::{
    Spanned,
    de::{DeTable, DeValue},
};

use super::{
    APP_KEYS, Config, ConfigError, Loading, SETTINGS, Setting, closest, did_you_mean, duration,
};
use crate::{
    apps::conditions::Conditions,
    apps::rollout::{FieldGuard, MODIFIABLE_FIELDS, Mode},
    apps::spec::FailurePolicy,
    hook::Hook,
    settings::AppSettings,
};

/// The config file being read: its path and text, to say where a value was written.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    /// `path:line:column` of a byte offset (both counted from 1, columns in characters).
    fn position(&self, offset: usize) -> String {
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("{}:{line}:{column}", self.path.display())
    }

    /// `path:line:column: key = <the value as written>`.
    fn origin(&self, key: &str, value: &Spanned<DeValue<'_>>) -> String {
        let span = value.span();
        let written = self.text.get(span.clone()).unwrap_or("?");
        format!("{}: {key} = {written}", self.position(span.start))
    }

    fn unknown(
        &self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        what: &str,
        known: &[&str],
    ) -> ConfigError {
        let name = key.get_ref();
        ConfigError::at(
            name.as_ref(),
            self.position(key.span().start),
            format!(
                "{what}{}",
                did_you_mean(closest(name, known.iter().copied()))
            ),
        )
    }
}

/// A scalar TOML value as the text a setting parses (a string's content, a number or a boolean
/// as written); `None` for arrays, tables and dates.
fn scalar<'a>(value: &'a DeValue<'_>) -> Option<std::borrow::Cow<'a, str>> {
    match value {
        DeValue::String(s) => Some(std::borrow::Cow::Borrowed(s.as_ref())),
        // Underscores are gone already (`100_000` is "100000"); other radixes become decimal.
        DeValue::Integer(i) if i.radix() == 10 => Some(std::borrow::Cow::Borrowed(i.as_str())),
        DeValue::Integer(i) => Some(match i128::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => std::borrow::Cow::Owned(n.to_string()),
            Err(_) => std::borrow::Cow::Borrowed(i.as_str()),
        }),
        DeValue::Float(f) => Some(std::borrow::Cow::Borrowed(f.as_str())),
        DeValue::Boolean(b) => Some(std::borrow::Cow::Owned(b.to_string())),
        _ => None,
    }
}

/// Reads the file's settings into `config`, collecting every problem with its line and column.
pub(super) fn read_file(path: &Path, text: &str, config: &mut Config, loading: &mut Loading) {
    let source = Source { path, text };
    let table = match DeTable::parse(text) {
        Ok(table) => table,
        Err(e) => {
            let at = match e.span() {
                Some(span) => source.position(span.start),
                None => path.display().to_string(),
            };
            let problem = e.message().trim().to_owned();
            loading.errors.push(ConfigError::at(
                "config",
                at,
                format!("{problem} (not valid TOML)"),
            ));
            return;
        }
    };
    let keys: Vec<&str> = SETTINGS
        .iter()
        .map(|s| s.key)
        .chain(["apps", "cluster"])
        .collect();
    for (key, value) in table.get_ref() {
        let name = key.get_ref().as_ref();
        if name == "apps" {
            read_apps(&source, value, config, loading);
            continue;
        }
        if name == "cluster" {
            read_cluster(&source, value, config, loading);
            continue;
        }
        let Some(setting) = Setting::named(name) else {
            loading
                .errors
                .push(source.unknown(key, &format!("{name} is not a setting"), &keys));
            continue;
        };
        let origin = source.origin(name, value);
        match scalar(value.get_ref()) {
            Some(raw) => loading.apply(config, setting, &raw, origin),
            None => loading.errors.push(ConfigError::at(
                name,
                origin,
                format!(
                    "expected a single value, not {}",
                    value.get_ref().type_str()
                ),
            )),
        }
    }
}

/// Reads the `[cluster]` table: `url` is `cluster_url`, `replicas` is `cluster_replicas`, …,
/// and `sidecar_id` is itself (each key names a setting of the cluster heading).
fn read_cluster(
    source: &Source<'_>,
    cluster: &Spanned<DeValue<'_>>,
    config: &mut Config,
    loading: &mut Loading,
) {
    let Some(entries) = cluster.get_ref().as_table() else {
        loading.errors.push(ConfigError::at(
            "cluster",
            source.origin("cluster", cluster),
            "expected a table [cluster] (url = \"nats://…\", name, sidecar_id, replicas, …)",
        ));
        return;
    };
    let in_cluster = |s: &&Setting| s.heading == super::heading::CLUSTER;
    let known: Vec<&str> = SETTINGS
        .iter()
        .filter(in_cluster)
        .map(|s| s.key.strip_prefix("cluster_").unwrap_or(s.key))
        .collect();
    for (key, value) in entries {
        let name = key.get_ref().as_ref();
        let full = format!("cluster.{name}");
        let setting = Setting::named(&format!("cluster_{name}"))
            .or_else(|| Setting::named(name))
            .filter(|s| in_cluster(s));
        let Some(setting) = setting else {
            loading.errors.push(source.unknown(
                key,
                &format!("{full} is not a cluster setting"),
                &known,
            ));
            continue;
        };
        let origin = source.origin(&full, value);
        match scalar(value.get_ref()) {
            Some(raw) => loading.apply(config, setting, &raw, origin),
            None => loading.errors.push(ConfigError::at(
                full,
                origin,
                "expected a single value".to_owned(),
            )),
        }
    }
}

/// Reads the `[apps.<id>]` tables.
fn read_apps(
    source: &Source<'_>,
    apps: &Spanned<DeValue<'_>>,
    config: &mut Config,
    loading: &mut Loading,
) {
    let Some(apps_table) = apps.get_ref().as_table() else {
        loading.errors.push(ConfigError::at(
            "apps",
            source.origin("apps", apps),
            "expected tables [apps.<app_id>]",
        ));
        return;
    };
    for (id, table) in apps_table {
        let app_id = id.get_ref().as_ref();
        let Some(entries) = table.get_ref().as_table() else {
            loading.errors.push(ConfigError::at(
                format!("apps.{app_id}"),
                source.origin(&format!("apps.{app_id}"), table),
                "expected a table [apps.<app_id>] of the app's settings",
            ));
            continue;
        };
        let mut app = AppSettings::default();
        for (key, value) in entries {
            let name = key.get_ref().as_ref();
            let full = format!("apps.{app_id}.{name}");
            let origin = source.origin(&full, value);
            if !APP_KEYS.contains(&name) {
                loading.errors.push(source.unknown(
                    key,
                    &format!("{full} is not an app setting"),
                    &APP_KEYS,
                ));
                continue;
            }
            match read_app_setting(&mut app, name, value.get_ref()) {
                Ok(()) => {
                    loading.origins.insert(full, origin);
                }
                Err(problem) => loading.errors.push(ConfigError::at(full, origin, problem)),
            }
        }
        config.apps.insert(app_id.to_owned(), app);
    }
}

/// Sets one key of an app's table.
fn read_app_setting(app: &mut AppSettings, key: &str, value: &DeValue<'_>) -> Result<(), String> {
    let one = || scalar(value).ok_or_else(|| "expected a single value".to_owned());
    match key {
        "priority" => {
            app.priority = Some(one()?.parse().map_err(|_| {
                format!("expected a whole number from {} to {}", i32::MIN, i32::MAX)
            })?);
        }
        "failure_policy" => {
            app.failure_policy = Some(match one()?.as_ref() {
                "ignore" => FailurePolicy::Ignore,
                "fail" => FailurePolicy::Fail,
                _ => return Err(r#"expected "ignore" or "fail""#.into()),
            });
        }
        "timeout" => app.timeout = Some(duration(&one()?)?),
        "allowed_hooks" => app.allowed_hooks = Some(hooks(value)?),
        "essential_hooks" => app.essential_hooks = hooks(value)?,
        "token" => app.token = Some(one()?.into_owned()),
        "enabled" => {
            app.enabled = match value {
                DeValue::Boolean(b) => Some(*b),
                _ => return Err("expected true or false".into()),
            }
        }
        "unavailable_message" => match value {
            DeValue::String(s) => app.unavailable_message = Some(s.to_string()),
            _ => return Err("expected a string (the message shown to the chat user)".into()),
        },
        "mode" => {
            app.mode = Some(match one()?.as_ref() {
                "enforce" => Mode::Enforce,
                "shadow" => Mode::Shadow,
                _ => return Err(r#"expected "enforce" or "shadow""#.into()),
            });
        }
        "match" => {
            let sources = strings(
                value,
                "CEL expressions (e.g. 'room.type == ROOM_TYPE_CHANNEL')",
            )?;
            app.match_conditions = Conditions::compile(&sources).map_err(|e| e.to_string())?;
        }
        "may_modify" => {
            let fields = strings(
                value,
                "room fields (e.g. \"display_name\", \"custom_fields.*\")",
            )?;
            app.may_modify = FieldGuard::new(fields).map_err(|field| {
                format!(
                    "{field:?} is not a room field a Modify answer may change{}; expected some of {}, \
                     \"custom_fields.*\" or \"custom_fields.<key>\"",
                    did_you_mean(closest(&field, MODIFIABLE_FIELDS.iter().copied())),
                    MODIFIABLE_FIELDS.join(", ")
                )
            })?;
        }
        "max_timeout" => app.max_timeout = Some(duration(&one()?)?),
        _ => return Err("is not an app setting".into()),
    }
    Ok(())
}

/// A list of strings.
fn strings(value: &DeValue<'_>, what: &str) -> Result<Vec<String>, String> {
    let expected = || format!("expected a list of {what}");
    let Some(list) = value.as_array() else {
        return Err(expected());
    };
    list.iter()
        .map(|item| match item.get_ref() {
            DeValue::String(s) => Ok(s.to_string()),
            _ => Err(expected()),
        })
        .collect()
}

/// A list of hook names.
fn hooks(value: &DeValue<'_>) -> Result<Vec<Hook>, String> {
    let expected = || {
        format!(
            "expected a list of hooks from {}",
            Hook::ALL.map(Hook::name).join(", ")
        )
    };
    let Some(list) = value.as_array() else {
        return Err(expected());
    };
    list.iter()
        .map(|item| match item.get_ref() {
            DeValue::String(name) => name.parse::<Hook>(),
            _ => Err(expected()),
        })
        .collect()
}
