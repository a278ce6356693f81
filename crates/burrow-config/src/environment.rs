//! Wrangler environments: `[env.NAME]` selected with `--env NAME`, merged over the top level with
//! wrangler's inheritance rules.
//!
//! - Inheritable keys (`main`, `compatibility_date`, `compatibility_flags`, `migrations`,
//!   `triggers`, Burrow's `[burrow]`, ...) take the environment's value when it has one, and the
//!   top-level value otherwise.
//! - `name` is inherited as `<top-level name>-<NAME>`, as wrangler names the deployed Worker.
//! - Non-inheritable keys (`vars` and every binding: `durable_objects`, `kv_namespaces`, `queues`,
//!   `workflows`, `services`, ...) come only from the environment. Wrangler warns when the top
//!   level has one that the environment lacks, and so do we.
//! - Selecting an environment the file does not define is an error, unless the file defines no
//!   environments at all, in which case wrangler warns and uses the top level (name suffixed).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use crate::error::Error;
use crate::reader::{Diagnostics, kind};
use crate::schema::is_non_inheritable;

/// The top level with the selected environment merged in.
pub(crate) struct Selected {
    /// The effective root table.
    pub(crate) root: Map<String, Value>,
    /// Key → path for keys whose value came from `env.NAME` (for messages).
    pub(crate) key_paths: BTreeMap<String, String>,
}

/// Merges environment `name` (if any) over the top level of `document`.
pub(crate) fn select(
    diagnostics: &mut Diagnostics,
    file: &Path,
    document: &Map<String, Value>,
    name: Option<&str>,
) -> Result<Selected, Error> {
    let environments = match document.get("env") {
        None => None,
        Some(Value::Object(environments)) => Some(environments),
        Some(other) => {
            diagnostics.wrong_type("env", other, "a table of environments");
            None
        }
    };
    let mut root = document.clone();
    root.remove("env");
    let mut key_paths = BTreeMap::new();
    let Some(name) = name else {
        return Ok(Selected { root, key_paths });
    };

    let environment = match environments.and_then(|environments| environments.get(name)) {
        Some(Value::Object(environment)) => environment,
        Some(other) => {
            let path = format!("env.{name}");
            diagnostics.problem(
                &path,
                format!("has the wrong type: {} (allowed a table)", kind(other)),
            );
            return Ok(Selected { root, key_paths });
        }
        None => {
            let defined: Vec<String> = environments
                .map(|environments| environments.keys().cloned().collect())
                .unwrap_or_default();
            if !defined.is_empty() {
                return Err(Error::UnknownEnvironment {
                    file: file.to_owned(),
                    name: name.to_owned(),
                    defined,
                });
            }
            diagnostics.warn(format!(
                "no environment named \"{name}\" (--env {name}); using the top-level configuration"
            ));
            suffix_name(&mut root, name);
            return Ok(Selected { root, key_paths });
        }
    };

    for key in document.keys() {
        if is_non_inheritable(key) && !environment.contains_key(key) {
            root.remove(key);
            diagnostics.warn(format!(
                "{key} exists at the top level but not in env.{name}; it is not inherited by \
                 environments, so env.{name} has none (add it to env.{name})"
            ));
        }
    }
    if !environment.contains_key("name") {
        suffix_name(&mut root, name);
    }
    for (key, value) in environment {
        root.insert(key.clone(), value.clone());
        key_paths.insert(key.clone(), format!("env.{name}.{key}"));
    }
    Ok(Selected { root, key_paths })
}

/// `name` becomes `<name>-<environment>`, as wrangler names an environment's Worker.
fn suffix_name(root: &mut Map<String, Value>, environment: &str) {
    if let Some(Value::String(name)) = root.get_mut("name") {
        name.push('-');
        name.push_str(environment);
    }
}
