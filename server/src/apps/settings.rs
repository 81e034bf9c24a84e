//! Operator settings for one app, by `app_id`: overrides of what the app registers, which hooks
//! it may register, which hooks it is essential for, its token, whether it starts enabled, and
//! how it is rolled out (shadow mode, match conditions, guarded modifications, its call budget).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{
    apps::conditions::Conditions,
    apps::rollout::{FieldGuard, Mode, Rollout},
    apps::spec::{AppSpec, FailurePolicy},
    hook::{Hook, HookSet},
};

/// The `[apps.<app_id>]` table of the config file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    /// Replaces the priority the app registers.
    pub priority: Option<i32>,
    /// Replaces the failure policy the app registers.
    pub failure_policy: Option<FailurePolicy>,
    /// Replaces the timeout the app registers (still capped by `max_timeout`).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// The only hooks the app may register; unset = any. Registering another is PERMISSION_DENIED.
    pub allowed_hooks: Option<Vec<Hook>>,
    /// Hooks that are prevented whenever this app cannot answer them: no live instance, disabled,
    /// or failed (Apps-Engine's "essential app disabled"). The app must register them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub essential_hooks: Vec<Hook>,
    /// The bearer token the app's instances must present on `AppRuntime.Connect`.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "redact")]
    pub token: Option<String>,
    /// Whether the app is called at start (default true); `Admin.SetAppEnabled` changes it.
    pub enabled: Option<bool>,
    /// The message shown to the chat user when this FAIL or essential app is unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable_message: Option<String>,
    /// `"shadow"`: the app is called but its answers change nothing (default `"enforce"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// CEL conditions over the call's payload; the app is called only when all are true.
    #[serde(
        default,
        rename = "match",
        skip_serializing_if = "Conditions::is_empty"
    )]
    pub match_conditions: Conditions,
    /// The room fields its Modify answers may change (unset: every field but `id`).
    #[serde(default, skip_serializing_if = "FieldGuard::is_open")]
    pub may_modify: FieldGuard,
    /// The longest timeout the app may register (`Register.timeout` is capped to it).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_timeout: Option<Duration>,
}

/// Writes a secret as `"<redacted>"` so printed configs can be shared.
pub fn redact<S: serde::Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

/// Why settings refuse a registration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsRefusal {
    /// The app registered hooks it is not allowed.
    #[error(
        "app {app_id:?} may not register {hooks} (allowed_hooks in the sidecar's config: {allowed})"
    )]
    HooksNotAllowed {
        /// The app.
        app_id: String,
        /// The refused hooks.
        hooks: String,
        /// The allowed hooks.
        allowed: String,
    },
    /// The app left out hooks it is essential for.
    #[error(
        "app {app_id:?} is essential for {hooks} (essential_hooks in the sidecar's config) and must register them"
    )]
    MissingEssential {
        /// The app.
        app_id: String,
        /// The missing hooks.
        hooks: String,
    },
}

fn names(set: HookSet) -> String {
    set.iter().map(Hook::name).collect::<Vec<_>>().join(", ")
}

impl AppSettings {
    /// The essential hooks as a set.
    pub fn essential(&self) -> HookSet {
        HookSet::of(self.essential_hooks.iter().copied())
    }

    /// Applies the overrides to a registration, or refuses it.
    pub fn apply(&self, spec: &mut AppSpec, max_timeout: Duration) -> Result<(), SettingsRefusal> {
        if let Some(allowed) = &self.allowed_hooks {
            let allowed = HookSet::of(allowed.iter().copied());
            let extra = spec.interfaces.minus(allowed);
            if !extra.is_empty() {
                return Err(SettingsRefusal::HooksNotAllowed {
                    app_id: spec.app_id.to_string(),
                    hooks: names(extra),
                    allowed: names(allowed),
                });
            }
        }
        let missing = self.essential().minus(spec.interfaces);
        if !missing.is_empty() {
            return Err(SettingsRefusal::MissingEssential {
                app_id: spec.app_id.to_string(),
                hooks: names(missing),
            });
        }
        if let Some(priority) = self.priority {
            spec.priority = priority;
        }
        if let Some(policy) = self.failure_policy {
            spec.failure_policy = policy;
        }
        let max_timeout = self.max_timeout(max_timeout);
        if let Some(timeout) = self.timeout {
            spec.timeout = timeout;
        }
        spec.timeout = spec.timeout.min(max_timeout);
        spec.essential = self.essential();
        spec.unavailable_message = self.unavailable_message();
        spec.rollout = self.rollout();
        Ok(())
    }

    /// The longest timeout this app may have: its own `max_timeout` within the sidecar's.
    pub fn max_timeout(&self, sidecar_max: Duration) -> Duration {
        self.max_timeout.map_or(sidecar_max, |m| m.min(sidecar_max))
    }

    /// The rollout settings, as the pipeline reads them.
    pub fn rollout(&self) -> std::sync::Arc<Rollout> {
        std::sync::Arc::new(Rollout {
            mode: self.mode.unwrap_or_default(),
            conditions: self.match_conditions.clone(),
            may_modify: self.may_modify.clone(),
        })
    }

    /// The message for the chat user when this app is unavailable, if the operator set one.
    pub fn unavailable_message(&self) -> Option<std::sync::Arc<str>> {
        self.unavailable_message.as_deref().map(Into::into)
    }
}
