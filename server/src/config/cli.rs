//! The command line: a `clap` command built from the settings table (a flag per setting, under
//! its `--help` heading, with its variable and default), and the `ROOMHOOKS_*` variables read next
//! to it, so tests can give both without touching the process's environment.

use std::{collections::BTreeMap, path::PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};

#[cfg(feature = "otlp")]
use super::OTLP_ENV;
use super::{APP_TOKENS_ENV, CONFIG_ENV, SETTINGS, heading};

/// The command line, and the `ROOMHOOKS_*` variables read with it.
#[derive(Debug, Default)]
pub struct Cli {
    /// The TOML config file (`--config`, or `ROOMHOOKS_CONFIG`).
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    pub print_config: bool,
    /// Apps' tokens, as APP_ID=TOKEN (`--app-token`, else `ROOMHOOKS_APP_TOKENS`).
    pub app_tokens: Vec<String>,
    /// Where to export spans over OTLP/gRPC (`--otlp-endpoint`, or `ROOMHOOKS_OTLP_ENDPOINT`).
    #[cfg(feature = "otlp")]
    pub otlp_endpoint: Option<String>,
    /// Settings given as flags, by file key, as written.
    pub(super) flags: BTreeMap<&'static str, String>,
    /// The `ROOMHOOKS_*` variables.
    pub(super) env: BTreeMap<String, String>,
}

impl Cli {
    /// The `clap` command: every setting's flag, under its heading, with its variable and default.
    pub fn command() -> Command {
        let mut command = Command::new("roomhooks")
            .version(env!("CARGO_PKG_VERSION"))
            .about("The roomhooks sidecar: runs chat-room hooks on app processes connected over gRPC.")
            .after_help(
                "Every setting is also a ROOMHOOKS_* variable and a key of the --config file \
                 (the flag's name with underscores); flags win over variables, which win over the file.",
            )
            .arg(
                Arg::new("config")
                    .long("config")
                    .value_name("PATH")
                    .help(with_env(
                        "A TOML config file (keys are the flag names with underscores, plus [apps.<app_id>] tables)",
                        CONFIG_ENV,
                        "",
                    )),
            )
            .arg(
                Arg::new("print_config")
                    .long("print-config")
                    .action(ArgAction::SetTrue)
                    .help("Print the effective configuration as TOML and exit"),
            );
        for setting in SETTINGS {
            let mut arg = Arg::new(setting.key)
                .long(setting.key.replace('_', "-"))
                .help_heading(setting.heading)
                .help(with_env(setting.help, &setting.env(), setting.default));
            arg = if setting.switch {
                arg.action(ArgAction::SetTrue)
            } else {
                arg.value_name(setting.key.to_uppercase())
                    .allow_hyphen_values(true)
            };
            command = command.arg(arg);
        }
        command = command.arg(
            Arg::new("app_tokens")
                .long("app-token")
                .value_name("ID=TOKEN")
                .action(ArgAction::Append)
                .value_delimiter(',')
                .help_heading(heading::SECURITY)
                .help(with_env(
                    "An app's token, as APP_ID=TOKEN (repeatable; the variable is comma-separated)",
                    APP_TOKENS_ENV,
                    "",
                )),
        );
        #[cfg(feature = "otlp")]
        {
            command = command.arg(
                Arg::new("otlp_endpoint")
                    .long("otlp-endpoint")
                    .value_name("URL")
                    .help_heading(heading::OBSERVABILITY)
                    .help(with_env(
                        "Export spans over OTLP/gRPC to this collector (e.g. http://127.0.0.1:4317)",
                        OTLP_ENV,
                        "",
                    )),
            );
        }
        command
    }

    /// Reads the process's arguments and `ROOMHOOKS_*` variables; prints help or a usage error
    /// and exits (code 2) when `clap` says so.
    pub fn parse() -> Cli {
        Cli::parse_from(std::env::args_os())
    }

    /// Like [`parse`](Self::parse), with `args` (the first is the program name) instead of the
    /// process's arguments.
    pub fn parse_from<I, T>(args: I) -> Cli
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        match Cli::try_parse_from(args) {
            Ok(cli) => cli,
            Err(err) => err.exit(),
        }
    }

    /// Parses `args` (the first is the program name) with the process's `ROOMHOOKS_*` variables.
    pub fn try_parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Cli::try_parse_with_env(args, env)
    }

    /// Parses `args` (the first is the program name) with the variables `env` instead of the
    /// process's (others than `ROOMHOOKS_*` are ignored): tests give both without touching the
    /// process's environment.
    pub fn try_parse_with_env<I, T>(
        args: I,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Cli::command().try_get_matches_from(args)?;
        let env: BTreeMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("ROOMHOOKS_"))
            .collect();
        let mut flags = BTreeMap::new();
        for setting in SETTINGS {
            if setting.switch {
                if matches.get_flag(setting.key) {
                    flags.insert(setting.key, "true".to_owned());
                }
            } else if let Some(value) = matches.get_one::<String>(setting.key) {
                flags.insert(setting.key, value.clone());
            }
        }
        let app_tokens = match matches.get_many::<String>("app_tokens") {
            Some(values) => values.cloned().collect(),
            None => env
                .get(APP_TOKENS_ENV)
                .map(|v| v.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
        };
        Ok(Cli {
            config: string_or_env(&matches, "config", &env, CONFIG_ENV).map(PathBuf::from),
            print_config: matches.get_flag("print_config"),
            app_tokens,
            #[cfg(feature = "otlp")]
            otlp_endpoint: string_or_env(&matches, "otlp_endpoint", &env, OTLP_ENV),
            flags,
            env,
        })
    }
}

fn string_or_env(
    matches: &ArgMatches,
    id: &str,
    env: &BTreeMap<String, String>,
    var: &str,
) -> Option<String> {
    matches
        .get_one::<String>(id)
        .cloned()
        .or_else(|| env.get(var).filter(|v| !v.is_empty()).cloned())
}

/// A setting's help line: what it does, its variable and its default.
fn with_env(help: &str, var: &str, default: &str) -> String {
    match default {
        "" => format!("{help} [env: {var}]"),
        default => format!("{help} [env: {var}] [default: {default}]"),
    }
}
