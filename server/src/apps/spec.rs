//! What an app declares when it registers, validated: its hooks, order, failure policy, timeout
//! and room-type filter.

use std::time::Duration;

use roomhooks::v1::{self as pb, FailurePolicy as WirePolicy};

use crate::{
    hook::{Hook, HookSet, RoomTypeSet},
    ids::{AppId, InvalidId},
};

/// What an app's error, timeout or missing instance means for the action — the one spelling
/// the sidecar uses (the config file writes it `"ignore"` / `"fail"`; the wire has its own enum,
/// converted at the edge; the store keeps `fail_closed`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Fail open: no objection, no change.
    Ignore,
    /// Fail closed: the action is prevented.
    Fail,
}

impl FailurePolicy {
    /// The wire value.
    pub fn to_wire(self) -> WirePolicy {
        match self {
            FailurePolicy::Ignore => WirePolicy::Ignore,
            FailurePolicy::Fail => WirePolicy::Fail,
        }
    }
}

/// The limits a registration is checked against (`Config::timeouts`; `Default` is a blank,
/// zeros).
#[derive(Clone, Copy, Debug, Default)]
pub struct TimeoutLimits {
    /// The timeout of an app that sets none.
    pub default: Duration,
    /// The most any app may ask for.
    pub max: Duration,
}

/// A refused registration.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// `app_id` is not a valid id.
    #[error("Register.app_id {0}")]
    AppId(InvalidId),
    /// `instance_id` is not a valid id.
    #[error("Register.instance_id {0}")]
    InstanceId(InvalidId),
    /// No hooks were listed.
    #[error("Register.interfaces is empty: list at least one HookInterface the app answers")]
    NoInterfaces,
    /// A hook value is UNSPECIFIED or unknown.
    #[error("Register.interfaces holds {0}, which is not a known HookInterface")]
    UnknownInterface(i32),
    /// A room type value is UNSPECIFIED or unknown.
    #[error(
        "Register.room_types holds {0}, which is not a known RoomType (leave the list empty for all)"
    )]
    UnknownRoomType(i32),
    /// The failure policy value is unknown.
    #[error("Register.failure_policy {0} is not a known FailurePolicy")]
    UnknownPolicy(i32),
    /// The timeout is zero or negative.
    #[error("Register.timeout must be a positive duration (or unset for the default)")]
    BadTimeout,
    /// The timeout is not a well-formed `google.protobuf.Duration`.
    #[error(
        "Register.timeout is not a valid google.protobuf.Duration (seconds {seconds}, nanos \
         {nanos}): nanos must be within ±999,999,999 and have the sign of seconds"
    )]
    MalformedTimeout {
        /// The seconds sent.
        seconds: i64,
        /// The nanos sent.
        nanos: i32,
    },
    /// The version string is absurdly long.
    #[error("Register.version is {0} bytes long; the limit is {MAX_VERSION_LEN} bytes")]
    VersionTooLong(usize),
}

/// The longest `Register.version` accepted, in bytes.
pub const MAX_VERSION_LEN: usize = 128;

/// A validated registration: everything that must agree between instances of one app.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AppSpec {
    /// The app's id.
    pub app_id: AppId,
    /// The hooks it answers.
    pub interfaces: HookSet,
    /// Apps run in ascending priority, then app id.
    pub priority: i32,
    /// What its failures mean.
    pub failure_policy: FailurePolicy,
    /// How long each call may take (already capped by the sidecar's max).
    pub timeout: Duration,
    /// Which rooms it wants.
    pub room_types: RoomTypeSet,
    /// Hooks for which this app's failure or absence always prevents the action (from the
    /// operator's config, never from the app).
    pub essential: HookSet,
    /// What the chat user is shown when this FAIL or essential app cannot answer (from the
    /// operator's config; `None`: the default message).
    pub unavailable_message: Option<std::sync::Arc<str>>,
    /// Shadow mode, match conditions and guarded fields (from the operator's config, never
    /// from the app).
    pub rollout: std::sync::Arc<crate::apps::rollout::Rollout>,
}

impl AppSpec {
    /// Validates a `Register` message.
    pub fn from_register(reg: &pb::Register, limits: TimeoutLimits) -> Result<Self, RegisterError> {
        let app_id = AppId::parse(&reg.app_id).map_err(RegisterError::AppId)?;
        if reg.version.len() > MAX_VERSION_LEN {
            return Err(RegisterError::VersionTooLong(reg.version.len()));
        }
        if reg.interfaces.is_empty() {
            return Err(RegisterError::NoInterfaces);
        }
        let mut interfaces = HookSet::default();
        for &value in &reg.interfaces {
            interfaces
                .insert(Hook::from_wire(value).ok_or(RegisterError::UnknownInterface(value))?);
        }
        let mut room_types = RoomTypeSet::default();
        for &value in &reg.room_types {
            match pb::RoomType::try_from(value) {
                Ok(t) if t != pb::RoomType::Unspecified => room_types.insert(t),
                _ => return Err(RegisterError::UnknownRoomType(value)),
            }
        }
        let failure_policy = match WirePolicy::try_from(reg.failure_policy) {
            Ok(WirePolicy::Unspecified | WirePolicy::Ignore) => FailurePolicy::Ignore,
            Ok(WirePolicy::Fail) => FailurePolicy::Fail,
            Err(_) => return Err(RegisterError::UnknownPolicy(reg.failure_policy)),
        };
        let timeout = match &reg.timeout {
            None => limits.default,
            Some(d) => {
                let well_formed = d.nanos.unsigned_abs() < 1_000_000_000
                    && !(d.seconds > 0 && d.nanos < 0)
                    && !(d.seconds < 0 && d.nanos > 0);
                if !well_formed {
                    return Err(RegisterError::MalformedTimeout {
                        seconds: d.seconds,
                        nanos: d.nanos,
                    });
                }
                let asked = Duration::try_from(*d).map_err(|_| RegisterError::BadTimeout)?;
                if asked.is_zero() {
                    return Err(RegisterError::BadTimeout);
                }
                asked
            }
        }
        .min(limits.max);
        Ok(AppSpec {
            app_id,
            interfaces,
            priority: reg.priority,
            failure_policy,
            timeout,
            room_types,
            essential: HookSet::default(),
            unavailable_message: None,
            rollout: Default::default(),
        })
    }

    /// What differs between this spec and another instance's, or `None` when they agree.
    /// Timeouts are not compared: the first live instance's wins.
    pub fn differences(&self, other: &AppSpec) -> Option<String> {
        let mut diffs = Vec::new();
        if self.interfaces != other.interfaces {
            diffs.push(format!(
                "interfaces {:?} vs {:?}",
                other.interfaces.iter().map(Hook::name).collect::<Vec<_>>(),
                self.interfaces.iter().map(Hook::name).collect::<Vec<_>>()
            ));
        }
        if self.priority != other.priority {
            diffs.push(format!("priority {} vs {}", other.priority, self.priority));
        }
        if self.failure_policy != other.failure_policy {
            diffs.push(format!(
                "failure_policy {:?} vs {:?}",
                other.failure_policy, self.failure_policy
            ));
        }
        if self.room_types != other.room_types {
            diffs.push(format!(
                "room_types {:?} vs {:?}",
                other
                    .room_types
                    .iter()
                    .map(|t| t.as_str_name())
                    .collect::<Vec<_>>(),
                self.room_types
                    .iter()
                    .map(|t| t.as_str_name())
                    .collect::<Vec<_>>()
            ));
        }
        if self.timeout != other.timeout {
            diffs.push(format!("timeout {:?} vs {:?}", other.timeout, self.timeout));
        }
        (!diffs.is_empty()).then(|| diffs.join("; "))
    }

    /// The policy that applies to a failure in `hook`: essential hooks always fail closed.
    pub fn policy_for(&self, hook: Hook) -> FailurePolicy {
        if self.essential.contains(hook) {
            FailurePolicy::Fail
        } else {
            self.failure_policy
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: TimeoutLimits = TimeoutLimits {
        default: Duration::from_secs(1),
        max: Duration::from_secs(10),
    };

    fn register() -> pb::Register {
        pb::Register {
            app_id: "filter".into(),
            interfaces: vec![pb::HookInterface::PreRoomUserJoined as i32],
            ..Default::default()
        }
    }

    #[test]
    fn defaults_apply_and_timeouts_are_capped() {
        let spec = AppSpec::from_register(&register(), LIMITS).unwrap();
        assert_eq!(spec.timeout, Duration::from_secs(1));
        assert_eq!(spec.failure_policy, FailurePolicy::Ignore);
        let mut long = register();
        long.timeout = Some(prost_types::Duration {
            seconds: 60,
            nanos: 0,
        });
        assert_eq!(
            AppSpec::from_register(&long, LIMITS).unwrap().timeout,
            LIMITS.max
        );
    }

    #[test]
    fn bad_registrations_name_the_field() {
        let mut r = register();
        r.interfaces = vec![0];
        let err = AppSpec::from_register(&r, LIMITS).unwrap_err().to_string();
        assert!(err.contains("Register.interfaces"), "{err}");
        let mut r = register();
        r.room_types = vec![42];
        let err = AppSpec::from_register(&r, LIMITS).unwrap_err().to_string();
        assert!(err.contains("Register.room_types"), "{err}");
        let mut r = register();
        r.timeout = Some(prost_types::Duration {
            seconds: 0,
            nanos: 0,
        });
        assert!(matches!(
            AppSpec::from_register(&r, LIMITS),
            Err(RegisterError::BadTimeout)
        ));
    }

    #[test]
    fn differences_name_each_mismatching_setting() {
        let a = AppSpec::from_register(&register(), LIMITS).unwrap();
        let mut r = register();
        r.priority = 5;
        r.failure_policy = pb::FailurePolicy::Fail as i32;
        let b = AppSpec::from_register(&r, LIMITS).unwrap();
        let diff = b.differences(&a).unwrap();
        assert!(diff.contains("priority 0 vs 5"), "{diff}");
        assert!(diff.contains("failure_policy Ignore vs Fail"), "{diff}");
        assert_eq!(a.differences(&a), None);
    }

    #[test]
    fn instances_that_ask_for_different_timeouts_differ() {
        let a = AppSpec::from_register(&register(), LIMITS).unwrap();
        let mut r = register();
        r.timeout = Some(prost_types::Duration {
            seconds: 3,
            nanos: 0,
        });
        let b = AppSpec::from_register(&r, LIMITS).unwrap();
        let diff = b.differences(&a).unwrap();
        assert!(diff.contains("timeout 1s vs 3s"), "{diff}");
    }

    #[test]
    fn a_malformed_duration_is_refused() {
        for (seconds, nanos) in [(1, -5), (-1, 5), (0, 1_000_000_000), (2, -1_000_000_000)] {
            let mut r = register();
            r.timeout = Some(prost_types::Duration { seconds, nanos });
            let refused = AppSpec::from_register(&r, LIMITS).unwrap_err();
            assert_eq!(
                refused,
                RegisterError::MalformedTimeout { seconds, nanos },
                "({seconds}, {nanos})"
            );
        }
        let mut r = register();
        r.timeout = Some(prost_types::Duration {
            seconds: 0,
            nanos: -5,
        });
        assert_eq!(
            AppSpec::from_register(&r, LIMITS).unwrap_err(),
            RegisterError::BadTimeout
        );
    }
}
