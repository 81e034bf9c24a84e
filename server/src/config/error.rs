//! What is wrong with a setting, and where it was written; the typo suggestions.

/// A setting that cannot work, or a config file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ConfigError {
    /// The file key at fault (`max_timeout`, `apps.filter.timeout`), or the flag.
    pub key: String,
    /// What is wrong, and what to do.
    pub problem: String,
    /// Where the value was written, as the user wrote it (`roomhooks.toml:3:15: max_timeout =
    /// "banana"`, `ROOMHOOKS_MAX_TIMEOUT="banana"`, `--max-timeout "banana"`); none for defaults.
    pub origin: Option<String>,
    /// Further problems found in the same pass, each reported on its own line.
    pub also: Vec<ConfigError>,
}

impl ConfigError {
    fn describe(&self) -> String {
        match &self.origin {
            Some(origin) => format!("{origin}: {}", self.problem),
            None => format!("invalid setting {}: {}", self.key, self.problem),
        }
    }

    /// This problem and every further one, in the order found.
    pub fn all(&self) -> impl Iterator<Item = &ConfigError> {
        std::iter::once(self).chain(self.also.iter())
    }

    pub(super) fn at(
        key: impl Into<String>,
        origin: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        ConfigError {
            key: key.into(),
            problem: problem.into(),
            origin: Some(origin.into()),
            also: Vec::new(),
        }
    }
}

pub(super) fn bad<T>(key: impl Into<String>, problem: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError {
        key: key.into(),
        problem: problem.into(),
        origin: None,
        also: Vec::new(),
    })
}

/// The closest of `known` to `unknown`, if it is close enough to be a typo.
pub(super) fn closest<'a>(
    unknown: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::levenshtein(unknown, k), k))
        .filter(|(distance, k)| *distance <= (k.len() / 3).max(2))
        .min()
        .map(|(_, k)| k)
}

pub(super) fn did_you_mean(closest: Option<&str>) -> String {
    match closest {
        Some(k) => format!("; did you mean `{k}`?"),
        None => String::new(),
    }
}
