//! Finding and reading configuration files: format detection, syntax errors with line and column,
//! environment selection, `.dev.vars` secrets, and the checks across several Workers
//! (`-c a.toml -c b.toml`).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::dotenv;
use crate::environment;
use crate::error::Error;
use crate::jsonc;
use crate::model::{BurrowSettings, VarValue, WorkerConfig};
use crate::reader::{Diagnostics, Table};
use crate::schema;

/// The file names looked for in a directory, in wrangler's order of preference: wrangler's
/// `findWranglerConfig` tries `wrangler.json`, then `wrangler.jsonc`, then `wrangler.toml`, and
/// uses the first that exists. (Wrangler also searches parent directories; Burrow reads only the
/// directory it is given.)
pub const CONFIG_FILE_NAMES: [&str; 3] = ["wrangler.json", "wrangler.jsonc", "wrangler.toml"];

/// A configuration file's syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `wrangler.toml`.
    Toml,
    /// `wrangler.json`; comments and trailing commas are accepted, as wrangler accepts them.
    Json,
    /// `wrangler.jsonc`.
    Jsonc,
}

impl Format {
    /// The format of a file by its extension; like wrangler, anything not `.json`/`.jsonc` is TOML.
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|extension| extension.to_str()) {
            Some("json") => Format::Json,
            Some("jsonc") => Format::Jsonc,
            _ => Format::Toml,
        }
    }
}

/// How to load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// `--env NAME`: the wrangler environment to select.
    pub environment: Option<String>,
}

/// One loaded Worker: its configuration and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Worker {
    /// The configuration file, as given (relative paths stay relative).
    pub file: PathBuf,
    /// The directory of the file; `main`, `.dev.vars` and `[burrow] data_dir` are relative to it.
    pub dir: PathBuf,
    /// The file's syntax.
    pub format: Format,
    /// The selected environment.
    pub environment: Option<String>,
    /// The validated configuration.
    pub config: WorkerConfig,
    /// Secrets from `.dev.vars` (or `.env` files), by name.
    pub secrets: BTreeMap<String, String>,
    /// The files the secrets came from.
    pub secrets_files: Vec<PathBuf>,
}

impl Worker {
    /// The Worker's name: `name`, else the directory's name, else `worker`.
    pub fn name(&self) -> String {
        if let Some(name) = &self.config.name {
            return name.clone();
        }
        fs::canonicalize(&self.dir)
            .ok()
            .and_then(|dir| {
                dir.file_name()
                    .and_then(|name| name.to_str())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "worker".to_owned())
    }

    /// The entry point's path, if `main` is set.
    pub fn main_path(&self) -> Option<PathBuf> {
        self.config.main.as_ref().map(|main| self.dir.join(main))
    }

    /// What the Worker's `env` holds besides bindings: `vars`, overridden by secrets of the same
    /// name (secrets are plain text), as `wrangler dev` does.
    pub fn env_values(&self) -> BTreeMap<String, VarValue> {
        let mut values = self.config.vars.clone();
        for (name, secret) in &self.secrets {
            values.insert(name.clone(), VarValue::Text(secret.clone()));
        }
        values
    }
}

/// Everything `burrow dev` / `burrow serve` (and a Rust SDK app) needs from configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedConfig {
    /// The first configuration: the Worker that receives ingress traffic.
    pub primary: Worker,
    /// The other configurations: Workers reached through service bindings and `script_name`.
    pub auxiliary: Vec<Worker>,
    /// Every warning, each starting with the file it concerns.
    pub warnings: Vec<String>,
}

impl LoadedConfig {
    /// The primary Worker, then the auxiliary ones.
    pub fn workers(&self) -> impl Iterator<Item = &Worker> {
        std::iter::once(&self.primary).chain(&self.auxiliary)
    }

    /// The Worker with this name.
    pub fn worker_named(&self, name: &str) -> Option<&Worker> {
        self.workers().find(|worker| worker.name() == name)
    }

    /// Burrow's settings; they come from the primary configuration only.
    pub fn burrow(&self) -> &BurrowSettings {
        &self.primary.config.burrow
    }
}

/// The configuration file in `dir` (see [`CONFIG_FILE_NAMES`]).
pub fn find_config(dir: &Path) -> Result<PathBuf, Error> {
    let metadata = fs::metadata(dir).map_err(|error| Error::Read {
        path: dir.to_owned(),
        error,
    })?;
    if !metadata.is_dir() {
        return Err(Error::Read {
            path: dir.to_owned(),
            error: io::Error::other("not a directory"),
        });
    }
    CONFIG_FILE_NAMES
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| Error::NotFound {
            dir: dir.to_owned(),
        })
}

/// Loads the configuration in `dir` (`burrow dev [DIR]`).
pub fn load_dir(dir: &Path, options: &LoadOptions) -> Result<LoadedConfig, Error> {
    let file = find_config(dir)?;
    load_files(&[file], options)
}

/// Loads one or more configuration files (`-c a.toml -c b.toml`); the first is the primary
/// Worker. Fails on the first file with errors; warnings of all files are collected.
pub fn load_files(files: &[PathBuf], options: &LoadOptions) -> Result<LoadedConfig, Error> {
    let Some((primary_file, auxiliary_files)) = files.split_first() else {
        return Err(Error::Conflict {
            messages: vec!["no configuration file given".to_owned()],
        });
    };
    let mut warnings = Vec::new();
    let primary = load_worker(primary_file, options, true, &mut warnings)?;
    let mut auxiliary = Vec::new();
    for file in auxiliary_files {
        auxiliary.push(load_worker(file, options, false, &mut warnings)?);
    }
    let loaded = LoadedConfig {
        primary,
        auxiliary,
        warnings,
    };
    check_workers(loaded)
}

/// Parses one configuration text without touching the filesystem (no secrets are read; `main`
/// is not checked). Returns the configuration and its warnings, which do not name the file.
pub fn parse_worker(
    text: &str,
    format: Format,
    file: &Path,
    options: &LoadOptions,
) -> Result<(WorkerConfig, Vec<String>), Error> {
    let document = parse_document(text, format, file)?;
    validate_document(&document, file, options)
}

fn validate_document(
    document: &Map<String, Value>,
    file: &Path,
    options: &LoadOptions,
) -> Result<(WorkerConfig, Vec<String>), Error> {
    let mut diagnostics = Diagnostics::default();
    let selected = environment::select(
        &mut diagnostics,
        file,
        document,
        options.environment.as_deref(),
    )?;
    let dir = parent_dir(file);
    let root = Table::new("", &selected.root).with_key_paths(selected.key_paths);
    let config = schema::worker(&mut diagnostics, root, &dir);
    if !diagnostics.problems.is_empty() {
        return Err(Error::Invalid {
            file: file.to_owned(),
            problems: diagnostics.problems,
        });
    }
    Ok((config, diagnostics.warnings))
}

fn load_worker(
    file: &Path,
    options: &LoadOptions,
    primary: bool,
    warnings: &mut Vec<String>,
) -> Result<Worker, Error> {
    let text = read(file)?;
    let format = Format::of(file);
    let document = parse_document(&text, format, file)?;
    let (config, file_warnings) = validate_document(&document, file, options)?;
    let dir = parent_dir(file);
    let prefix = |warning: String| format!("{}: {warning}", file.display());
    warnings.extend(file_warnings.into_iter().map(prefix));
    if !primary && document.contains_key("burrow") {
        warnings.push(prefix(
            "[burrow] is read from the first configuration only; ignored here".to_owned(),
        ));
    }

    if let Some(main) = &config.main
        && !dir.join(main).is_file()
    {
        warnings.push(prefix(format!(
            "main = \"{main}\" does not exist (looked for {})",
            dir.join(main).display()
        )));
    }
    let (secrets, secrets_files) = load_secrets(&dir, options.environment.as_deref())?;
    let secrets = match &config.required_secrets {
        // With `secrets.required`, only declared secrets and overrides of vars are loaded.
        Some(required) => {
            let missing: Vec<&str> = required
                .iter()
                .filter(|name| !secrets.contains_key(*name))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                warnings.push(prefix(format!(
                    "missing required secrets: {} (add them to .dev.vars)",
                    missing.join(", ")
                )));
            }
            secrets
                .into_iter()
                .filter(|(name, _)| required.contains(name) || config.vars.contains_key(name))
                .collect()
        }
        None => secrets,
    };
    Ok(Worker {
        file: file.to_owned(),
        dir,
        format,
        environment: options.environment.clone(),
        config,
        secrets,
        secrets_files,
    })
}

fn read(file: &Path) -> Result<String, Error> {
    fs::read_to_string(file).map_err(|error| Error::Read {
        path: file.to_owned(),
        error,
    })
}

/// The directory holding `file`; `.` for a bare file name.
fn parent_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Parses TOML or JSON(C) into one tree; syntax errors carry line and column.
fn parse_document(text: &str, format: Format, file: &Path) -> Result<Map<String, Value>, Error> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format {
        Format::Toml => {
            let table: toml::Table = toml::from_str(text).map_err(|error| {
                let offset = error.span().map_or(0, |span| span.start);
                let (line, column) = line_and_column(text, offset);
                Error::Syntax {
                    file: file.to_owned(),
                    line,
                    column,
                    message: error.message().trim().to_owned(),
                }
            })?;
            Ok(table
                .into_iter()
                .map(|(key, value)| (key, toml_to_json(value)))
                .collect())
        }
        // Wrangler reads `wrangler.json` as JSONC too.
        Format::Json | Format::Jsonc => {
            let json = jsonc::to_json(text).map_err(|unterminated| {
                let (line, column) = line_and_column(text, unterminated.offset);
                Error::Syntax {
                    file: file.to_owned(),
                    line,
                    column,
                    message: "unterminated /* comment".to_owned(),
                }
            })?;
            match serde_json::from_str::<Value>(&json) {
                Ok(Value::Object(map)) => Ok(map),
                Ok(other) => Err(Error::Syntax {
                    file: file.to_owned(),
                    line: 1,
                    column: 1,
                    message: format!(
                        "the configuration must be a JSON object, not {}",
                        crate::reader::kind(&other)
                    ),
                }),
                Err(error) => Err(Error::Syntax {
                    file: file.to_owned(),
                    line: error.line(),
                    column: error.column(),
                    message: json_message(&error),
                }),
            }
        }
    }
}

/// serde_json's message without its trailing " at line L column C" (we print those first).
fn json_message(error: &serde_json::Error) -> String {
    let message = error.to_string();
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message,
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |index| index + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// TOML values as JSON; dates and times become their TOML text, as wrangler's TOML parser turns
/// them into strings when it serialises them.
fn toml_to_json(value: toml::Value) -> Value {
    match value {
        toml::Value::String(text) => Value::String(text),
        toml::Value::Integer(integer) => Value::from(integer),
        toml::Value::Float(float) => serde_json::Number::from_f64(float)
            .map_or_else(|| Value::String(float.to_string()), Value::Number),
        toml::Value::Boolean(flag) => Value::Bool(flag),
        toml::Value::Datetime(datetime) => Value::String(datetime.to_string()),
        toml::Value::Array(items) => Value::Array(items.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => Value::Object(
            table
                .into_iter()
                .map(|(key, value)| (key, toml_to_json(value)))
                .collect(),
        ),
    }
}

/// Secrets for local development, found as wrangler finds them: `.dev.vars.<env>` if an
/// environment is selected and the file exists, else `.dev.vars`; if neither exists, the `.env`
/// files (`.env`, `.env.local`, `.env.<env>`, `.env.<env>.local`, later ones winning; unlike
/// wrangler, without `${VAR}` expansion).
fn load_secrets(
    dir: &Path,
    environment: Option<&str>,
) -> Result<(BTreeMap<String, String>, Vec<PathBuf>), Error> {
    let mut dev_vars = Vec::new();
    if let Some(environment) = environment {
        dev_vars.push(dir.join(format!(".dev.vars.{environment}")));
    }
    dev_vars.push(dir.join(".dev.vars"));
    for path in dev_vars {
        if let Some(text) = read_optional(&path)? {
            return Ok((dotenv::parse(&text), vec![path]));
        }
    }
    let mut env_files = vec![dir.join(".env"), dir.join(".env.local")];
    if let Some(environment) = environment {
        env_files.push(dir.join(format!(".env.{environment}")));
        env_files.push(dir.join(format!(".env.{environment}.local")));
    }
    let mut secrets = BTreeMap::new();
    let mut used = Vec::new();
    for path in env_files {
        if let Some(text) = read_optional(&path)? {
            secrets.extend(dotenv::parse(&text));
            used.push(path);
        }
    }
    Ok((secrets, used))
}

fn read_optional(path: &Path) -> Result<Option<String>, Error> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(Error::Read {
            path: path.to_owned(),
            error,
        }),
    }
}

/// Checks across Workers: unique names, one consumer per queue, and references to Workers that
/// were not loaded (warnings, as `wrangler dev` shows them as "not connected").
fn check_workers(mut loaded: LoadedConfig) -> Result<LoadedConfig, Error> {
    let mut messages = Vec::new();
    let mut names: BTreeMap<String, &Path> = BTreeMap::new();
    for worker in &loaded.auxiliary {
        if worker.config.name.is_none() {
            messages.push(format!(
                "{}: name is missing (allowed: a Worker name; auxiliary Workers are bound by name)",
                worker.file.display()
            ));
        }
    }
    for worker in loaded.workers() {
        let name = worker.name();
        if let Some(first) = names.insert(name.clone(), &worker.file) {
            messages.push(format!(
                "{}: name = \"{name}\" is also the name of the Worker in {} (allowed: a name used once)",
                worker.file.display(),
                first.display()
            ));
        }
    }
    let mut consumers: BTreeMap<&str, &Path> = BTreeMap::new();
    for worker in loaded.workers() {
        for consumer in &worker.config.queue_consumers {
            if let Some(first) = consumers.insert(&consumer.queue, &worker.file) {
                messages.push(format!(
                    "{}: queues.consumers queue = \"{}\" already has a consumer in {} (allowed: one consumer per queue)",
                    worker.file.display(),
                    consumer.queue,
                    first.display()
                ));
            }
        }
    }
    if !messages.is_empty() {
        return Err(Error::Conflict { messages });
    }

    let mut warnings = Vec::new();
    for worker in loaded.workers() {
        let file = worker.file.display();
        let own = worker.name();
        let exists = |name: &str| name == own || names.contains_key(name);
        for service in &worker.config.services {
            if !exists(&service.service) {
                warnings.push(format!(
                    "{file}: service binding {} targets Worker \"{}\", which is not loaded (add -c with its config); calls to it will fail",
                    service.binding, service.service
                ));
            }
        }
        for binding in &worker.config.durable_objects {
            match binding.script_name.as_deref() {
                Some(script) if !exists(script) => warnings.push(format!(
                    "{file}: Durable Object binding {} uses class {} of Worker \"{script}\", which is not loaded (add -c with its config)",
                    binding.name, binding.class_name
                )),
                Some(script) if script != own => {
                    let defined = loaded.worker_named(script).is_some_and(|other| {
                        other
                            .config
                            .durable_object_classes()
                            .contains_key(&binding.class_name)
                    });
                    if !defined {
                        warnings.push(format!(
                            "{file}: Durable Object binding {} uses class {}, which no migration of Worker \"{script}\" creates",
                            binding.name, binding.class_name
                        ));
                    }
                }
                _ => {}
            }
        }
        for workflow in &worker.config.workflows {
            if let Some(script) = workflow.script_name.as_deref()
                && !exists(script)
            {
                warnings.push(format!(
                        "{file}: Workflow binding {} uses class {} of Worker \"{script}\", which is not loaded (add -c with its config)",
                        workflow.binding, workflow.class_name
                    ));
            }
        }
    }
    loaded.warnings.extend(warnings);
    Ok(loaded)
}
