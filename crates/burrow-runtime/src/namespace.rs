//! Durable Object namespaces: their stable identity, the installation secret their keys derive
//! from, and wrangler `migrations` that create, rename and delete them.
//!
//! # Identity
//!
//! Each Durable Object class gets a namespace when the migration that creates it is applied. A
//! namespace has a random 16-byte [`NamespaceId`] that never changes: `renamed_classes` moves the
//! class name to the same namespace, so every object keeps its ID and its data (which lives under
//! the namespace id, not the class name). A class deleted and later created again gets a new
//! namespace.
//!
//! The namespace's *unique key* (workerd's `uniqueKey`, from which [`crate::id`] derives the
//! namespace key) is, by default,
//! `hex(HMAC-SHA256(installation secret, "burrow namespace unique key v1\0" ‖ namespace id))`.
//! The installation secret is 32 random bytes made the first time a data directory is opened. So
//! the same class name on two installations gives different IDs, and an ID from one installation
//! is rejected by another, as IDs from another Cloudflare account are.
//!
//! A class may instead be given an explicit unique key ([`Namespaces::set_unique_key`]). Its IDs
//! are then the same on every installation that uses that key. With the key
//! `"<worker name>-<class name>"` they are also the IDs `wrangler dev` (Miniflare) gives, which
//! lets a project keep IDs it stored while developing locally. Cloudflare's own keys are secret,
//! so no setting reproduces the IDs of objects deployed there. Changing a class's unique key
//! changes every ID of the class: IDs saved before no longer parse, and names map to new objects.
//!
//! # Migrations
//!
//! [`Namespaces::apply_migrations`] follows `wrangler deploy`: it finds the last applied tag in the
//! list and applies the migrations after it, in order; a list that does not contain the last
//! applied tag is an error (Burrow does not guess), and so is an inconsistent step. All pending
//! migrations are applied, or none: the file is written once, at the end. Within one migration,
//! new classes come first, then renames, then deletions. `transferred_classes` is refused: it
//! moves objects between Workers, and Burrow has no second Worker's objects to take them from.
//!
//! Deleting a class only marks its namespace deleted ([`Namespaces::deleted`]); the runtime
//! removes the objects' data and then calls [`Namespaces::forget_deleted`].
//!
//! # The file
//!
//! Everything is in `<data>/node/namespaces.json` (mode 0600: it holds the secret). It is small
//! and changes only at startup, so each change rewrites it whole: temporary file, fsync, rename,
//! fsync of the directory. A crash leaves the old file or the new one, never a mix.
//!
//! ```json
//! {
//!   "format": 1,
//!   "installation_secret": "<64 hex digits>",
//!   "migration_tag": "v2",
//!   "applied_tags": ["v1", "v2"],
//!   "namespaces": [
//!     { "id": "<32 hex digits>", "class_name": "Counter", "sqlite": true, "created_by_tag": "v1" },
//!     { "id": "<32 hex digits>", "class_name": "Old", "sqlite": false, "created_by_tag": "v1",
//!       "deleted_by_tag": "v2" }
//!   ]
//! }
//! ```
//!
//! A namespace with an explicit key also has `"unique_key": "..."`. One process owns a data
//! directory at a time; this module does not lock it.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use burrow_config::{DurableObjectBinding, Migration};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::id::{IdFactory, decode_hex_into, encode_hex};

/// The file's name inside `<data>/node/`.
pub const FILE_NAME: &str = "namespaces.json";
const FORMAT: u32 = 1;
const UNIQUE_KEY_CONTEXT: &[u8] = b"burrow namespace unique key v1\0";

/// A namespace's stable identity: 16 random bytes, shown as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NamespaceId([u8; 16]);

impl NamespaceId {
    /// The id with these bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        NamespaceId(bytes)
    }

    /// The 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parses 32 hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 16];
        decode_hex_into(text, &mut bytes)?;
        Some(NamespaceId(bytes))
    }

    fn random() -> Result<Self, Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(Error::Random)?;
        Ok(NamespaceId(bytes))
    }
}

impl fmt::Display for NamespaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_hex(&self.0))
    }
}

impl fmt::Debug for NamespaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NamespaceId({self})")
    }
}

impl Serialize for NamespaceId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for NamespaceId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        NamespaceId::parse(&text)
            .ok_or_else(|| serde::de::Error::custom("a namespace id is 32 hex digits"))
    }
}

/// The installation secret: 32 random bytes, stored as 64 hex digits. Deliberately not `Debug`.
#[derive(Clone, PartialEq, Eq)]
struct Secret([u8; 32]);

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&encode_hex(&self.0))
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut bytes = [0u8; 32];
        decode_hex_into(&text, &mut bytes)
            .ok_or_else(|| serde::de::Error::custom("the installation secret is 64 hex digits"))?;
        Ok(Secret(bytes))
    }
}

/// A live namespace, as the runtime needs it. `Debug` hides the unique key: whoever has it can
/// make valid IDs for the namespace.
#[derive(Clone, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// Stable across renames.
    pub id: NamespaceId,
    /// The class it belongs to now.
    pub class_name: String,
    /// workerd's `uniqueKey`: the namespace key is its SHA-256. Derived from the installation
    /// secret unless set explicitly.
    pub unique_key: String,
    /// Created by `new_sqlite_classes` (SQL API); otherwise by `new_classes` (key-value only).
    pub sqlite: bool,
}

impl fmt::Debug for NamespaceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamespaceInfo")
            .field("id", &self.id)
            .field("class_name", &self.class_name)
            .field("unique_key", &format_args!(".."))
            .field("sqlite", &self.sqlite)
            .finish()
    }
}

impl NamespaceInfo {
    /// Makes and checks this namespace's IDs.
    pub fn id_factory(&self) -> IdFactory {
        IdFactory::from_unique_key(&self.unique_key)
    }
}

/// A namespace whose class a migration deleted and whose data the runtime has yet to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedNamespace {
    /// Where its objects' data is.
    pub id: NamespaceId,
    /// The class name it had when deleted.
    pub class_name: String,
    /// The migration that deleted it.
    pub deleted_by_tag: String,
}

/// One effect of an applied migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `new_classes` / `new_sqlite_classes` made a namespace.
    Created {
        /// The migration.
        tag: String,
        /// The new class.
        class_name: String,
        /// Its new namespace.
        id: NamespaceId,
        /// `new_sqlite_classes`.
        sqlite: bool,
    },
    /// `renamed_classes` moved a namespace to a new class name.
    Renamed {
        /// The migration.
        tag: String,
        /// The old class name.
        from: String,
        /// The new class name.
        to: String,
        /// The namespace, unchanged.
        id: NamespaceId,
    },
    /// `deleted_classes` marked a namespace deleted.
    Deleted {
        /// The migration.
        tag: String,
        /// The deleted class.
        class_name: String,
        /// The namespace whose data is to be removed.
        id: NamespaceId,
    },
}

/// What [`Namespaces::apply_migrations`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The tags applied now, in order; empty when everything was applied before.
    pub tags: Vec<String>,
    /// Their effects, in order.
    pub changes: Vec<Change>,
}

impl Applied {
    /// Whether nothing was applied.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }
}

/// What a migration step was doing when it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `new_classes` or `new_sqlite_classes`.
    Create,
    /// `renamed_classes` from `from` to `to`.
    Rename {
        /// The old name.
        from: String,
        /// The new name.
        to: String,
    },
    /// `deleted_classes`.
    Delete,
}

impl Operation {
    /// "cannot create class 'X'", "cannot rename class 'A' to 'B'", "cannot delete class 'X'".
    fn describe(&self, class: &str) -> String {
        match self {
            Operation::Create => format!("cannot create class '{class}'"),
            Operation::Rename { from, to } => format!("cannot rename class '{from}' to '{to}'"),
            Operation::Delete => format!("cannot delete class '{class}'"),
        }
    }
}

/// Why the namespaces could not be loaded, changed or checked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the data directory failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("cannot read", "cannot write", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The file exists but is not one this version can use.
    #[error("{} is not a valid Burrow namespaces file: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
    /// A migration has an empty tag.
    #[error("migration number {number} has an empty `tag`; every migration needs a unique tag")]
    EmptyTag {
        /// 1-based position in `migrations`.
        number: usize,
    },
    /// Two migrations have the same tag.
    #[error(
        "migration tag \"{tag}\" appears more than once in `migrations`; every migration needs a unique tag"
    )]
    DuplicateTag {
        /// The tag.
        tag: String,
    },
    /// The last applied tag is missing from the configuration.
    #[error(
        "this data directory's last applied migration tag \"{tag}\" was not found in your `migrations`. \
         You may have already deleted it. Keep every applied migration in the list, in order, and \
         add new ones at the end"
    )]
    TagNotFound {
        /// The last applied tag.
        tag: String,
    },
    /// A migration names a class with an empty string.
    #[error("migration \"{tag}\": a class name is empty")]
    EmptyClassName {
        /// The migration.
        tag: String,
    },
    /// A class appears twice in one migration.
    #[error(
        "migration \"{tag}\": class '{class}' cannot be the target of more than one migration \
         (it appears more than once in this migration)"
    )]
    DuplicateTarget {
        /// The migration.
        tag: String,
        /// The class.
        class: String,
    },
    /// A migration creates a class that exists, or renames a class onto one that exists.
    #[error(
        "migration \"{tag}\": {}: a Durable Object class named '{class}' already exists",
        .operation.describe(.class)
    )]
    ClassExists {
        /// The migration.
        tag: String,
        /// The class that exists.
        class: String,
        /// The step.
        operation: Operation,
    },
    /// A migration renames or deletes a class that does not exist.
    #[error(
        "migration \"{tag}\": {}: no Durable Object class '{class}' exists (no earlier migration \
         created it, or one renamed or deleted it)",
        .operation.describe(.class)
    )]
    ClassNotFound {
        /// The migration.
        tag: String,
        /// The missing class.
        class: String,
        /// The step.
        operation: Operation,
    },
    /// A migration uses `transferred_classes`.
    #[error(
        "migration \"{tag}\": transferred_classes is not supported (class '{to}' from '{from}' of \
         Worker '{from_script}'): Burrow cannot move another Worker's objects. Use new_sqlite_classes \
         for a fresh class, or renamed_classes within one Worker"
    )]
    TransferUnsupported {
        /// The migration.
        tag: String,
        /// The class in the other Worker.
        from: String,
        /// The other Worker.
        from_script: String,
        /// The class here.
        to: String,
    },
    /// A binding names a class no migration created (Cloudflare's error 10061).
    #[error(
        "Cannot create binding for class '{class}' because it is not currently configured to \
         implement Durable Objects. Ensure a --new-class migration has been applied to it. \
         (binding '{binding}'; add a [[migrations]] entry with new_sqlite_classes = [\"{class}\"])"
    )]
    BindingWithoutClass {
        /// The binding.
        binding: String,
        /// The class.
        class: String,
    },
    /// A binding names a class that a migration deletes.
    #[error(
        "Cannot apply --delete-class migration to class '{class}' without also removing the binding \
         that references it. (binding '{binding}')"
    )]
    BindingToDeletedClass {
        /// The binding.
        binding: String,
        /// The deleted class.
        class: String,
    },
    /// [`Namespaces::set_unique_key`] named a class that has no namespace.
    #[error(
        "cannot set the unique key of class '{class}': no Durable Object class '{class}' exists"
    )]
    UnknownClass {
        /// The class.
        class: String,
    },
    /// An explicit unique key is empty or used by another class.
    #[error("cannot give class '{class}' the unique key {key:?}: {reason}")]
    InvalidUniqueKey {
        /// The class.
        class: String,
        /// The key.
        key: String,
        /// Why not.
        reason: String,
    },
}

/// The stored state, exactly as serialized.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    format: u32,
    installation_secret: Secret,
    migration_tag: Option<String>,
    applied_tags: Vec<String>,
    namespaces: Vec<Record>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    id: NamespaceId,
    class_name: String,
    sqlite: bool,
    created_by_tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unique_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deleted_by_tag: Option<String>,
}

impl Record {
    fn is_live(&self) -> bool {
        self.deleted_by_tag.is_none()
    }
}

impl State {
    fn live(&self, class_name: &str) -> Option<&Record> {
        self.namespaces
            .iter()
            .find(|record| record.is_live() && record.class_name == class_name)
    }

    fn live_mut(&mut self, class_name: &str) -> Option<&mut Record> {
        self.namespaces
            .iter_mut()
            .find(|record| record.is_live() && record.class_name == class_name)
    }

    /// Checks what the type cannot: the invariants a loaded file must hold.
    fn check(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "format {} is not supported (this Burrow reads format {FORMAT})",
                self.format
            ));
        }
        if self.migration_tag.as_ref() != self.applied_tags.last() {
            return Err("migration_tag is not the last of applied_tags".to_owned());
        }
        let mut ids = BTreeSet::new();
        let mut live_classes = BTreeSet::new();
        for record in &self.namespaces {
            if !ids.insert(record.id) {
                return Err(format!("namespace id {} appears twice", record.id));
            }
            if record.is_live() && !live_classes.insert(record.class_name.as_str()) {
                return Err(format!(
                    "class '{}' has two live namespaces",
                    record.class_name
                ));
            }
        }
        Ok(())
    }
}

/// Class names that belong to Burrow's system objects.
pub const SYSTEM_CLASS_PREFIX: &str = "__burrow_";

/// The namespaces of one data directory. See the module documentation.
pub struct Namespaces {
    path: PathBuf,
    state: State,
}

impl fmt::Debug for Namespaces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Namespaces")
            .field("path", &self.path)
            .field("migration_tag", &self.state.migration_tag)
            .field("live", &self.list())
            .field("deleted", &self.deleted())
            .finish()
    }
}

impl Namespaces {
    /// Opens `<data_dir>/node/namespaces.json`, creating the directories, the installation secret
    /// and the file the first time.
    pub fn open(data_dir: &Path) -> Result<Namespaces, Error> {
        let node_dir = data_dir.join("node");
        let path = node_dir.join(FILE_NAME);
        match fs::read(&path) {
            Ok(bytes) => {
                let state: State =
                    serde_json::from_slice(&bytes).map_err(|error| Error::Corrupt {
                        path: path.clone(),
                        detail: error.to_string(),
                    })?;
                state.check().map_err(|detail| Error::Corrupt {
                    path: path.clone(),
                    detail,
                })?;
                Ok(Namespaces { path, state })
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                create_dir_durably(&node_dir)?;
                let mut secret = [0u8; 32];
                getrandom::fill(&mut secret).map_err(Error::Random)?;
                let state = State {
                    format: FORMAT,
                    installation_secret: Secret(secret),
                    migration_tag: None,
                    applied_tags: Vec::new(),
                    namespaces: Vec::new(),
                };
                write_durably(&path, &state)?;
                Ok(Namespaces { path, state })
            }
            Err(source) => Err(Error::Io {
                action: "cannot read",
                path,
                source,
            }),
        }
    }

    /// The file this state lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tag of the last applied migration.
    pub fn migration_tag(&self) -> Option<&str> {
        self.state.migration_tag.as_deref()
    }

    /// Every applied tag, oldest first.
    pub fn applied_tags(&self) -> &[String] {
        &self.state.applied_tags
    }

    /// Applies the migrations after the last applied tag. See the module documentation.
    pub fn apply_migrations(&mut self, migrations: &[Migration]) -> Result<Applied, Error> {
        self.apply_config(migrations, &[])
    }

    /// Applies the migrations, then checks the bindings against the result, and only then writes
    /// anything: a configuration that deletes a class it still binds changes nothing.
    pub fn apply_config(
        &mut self,
        migrations: &[Migration],
        bindings: &[DurableObjectBinding],
    ) -> Result<Applied, Error> {
        let (next, applied) = plan(&self.state, migrations)?;
        check_bindings(&next, bindings)?;
        if !applied.is_empty() {
            write_durably(&self.path, &next)?;
            self.state = next;
        }
        Ok(applied)
    }

    /// Checks that every binding to a class of this Worker (no `script_name`) names a live class.
    pub fn check_bindings(&self, bindings: &[DurableObjectBinding]) -> Result<(), Error> {
        check_bindings(&self.state, bindings)
    }

    /// The live namespace of `class_name`.
    pub fn namespace(&self, class_name: &str) -> Option<NamespaceInfo> {
        self.state.live(class_name).map(|record| self.info(record))
    }

    /// The live namespace with this id.
    pub fn namespace_by_id(&self, id: &NamespaceId) -> Option<NamespaceInfo> {
        self.state
            .namespaces
            .iter()
            .find(|record| record.is_live() && record.id == *id)
            .map(|record| self.info(record))
    }

    /// The namespace of a system class (queues, workflows, KV are built on Durable Objects).
    /// System classes need no migration: the namespace id is derived from the class name, so it
    /// is stable, and the unique key from the installation secret, as for user classes. Their
    /// names start with [`SYSTEM_CLASS_PREFIX`], which user migrations cannot use.
    pub fn system_namespace(&self, class_name: &str) -> NamespaceInfo {
        use sha2::Digest;
        let digest = Sha256::new()
            .chain_update(b"burrow system namespace\0")
            .chain_update(class_name.as_bytes())
            .finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        let id = NamespaceId::from_bytes(bytes);
        NamespaceInfo {
            id,
            class_name: class_name.to_string(),
            unique_key: derived_unique_key(&self.state.installation_secret, &id),
            sqlite: true,
        }
    }

    /// The ID factory of `class_name`'s live namespace.
    pub fn id_factory(&self, class_name: &str) -> Option<IdFactory> {
        self.namespace(class_name).map(|info| info.id_factory())
    }

    /// Every live namespace, by class name.
    pub fn list(&self) -> Vec<NamespaceInfo> {
        let mut list: Vec<_> = self
            .state
            .namespaces
            .iter()
            .filter(|record| record.is_live())
            .map(|record| self.info(record))
            .collect();
        list.sort_by(|a, b| a.class_name.cmp(&b.class_name));
        list
    }

    /// Deleted namespaces whose data the runtime has not yet removed, oldest first.
    pub fn deleted(&self) -> Vec<DeletedNamespace> {
        self.state
            .namespaces
            .iter()
            .filter_map(|record| {
                Some(DeletedNamespace {
                    id: record.id,
                    class_name: record.class_name.clone(),
                    deleted_by_tag: record.deleted_by_tag.clone()?,
                })
            })
            .collect()
    }

    /// Forgets a deleted namespace once the runtime has removed its data. Returns whether there
    /// was one with this id; live namespaces are never forgotten.
    pub fn forget_deleted(&mut self, id: &NamespaceId) -> Result<bool, Error> {
        let Some(position) = self
            .state
            .namespaces
            .iter()
            .position(|record| !record.is_live() && record.id == *id)
        else {
            return Ok(false);
        };
        let mut next = self.state.clone();
        next.namespaces.remove(position);
        write_durably(&self.path, &next)?;
        self.state = next;
        Ok(true)
    }

    /// Gives `class_name` an explicit unique key, or (`None`) goes back to the derived one. This
    /// changes every ID of the class; see the module documentation. Setting the key it already
    /// has writes nothing.
    pub fn set_unique_key(
        &mut self,
        class_name: &str,
        unique_key: Option<&str>,
    ) -> Result<(), Error> {
        let Some(record) = self.state.live(class_name) else {
            return Err(Error::UnknownClass {
                class: class_name.to_owned(),
            });
        };
        if record.unique_key.as_deref() == unique_key {
            return Ok(());
        }
        if let Some(key) = unique_key {
            let invalid = |reason: String| Error::InvalidUniqueKey {
                class: class_name.to_owned(),
                key: key.to_owned(),
                reason,
            };
            if key.is_empty() {
                return Err(invalid("a unique key cannot be empty".to_owned()));
            }
            if let Some(other) = self.list().into_iter().find(|info| info.unique_key == key) {
                return Err(invalid(format!(
                    "class '{}' already uses it, and two classes with one key would share IDs",
                    other.class_name
                )));
            }
        }
        let mut next = self.state.clone();
        next.live_mut(class_name)
            .expect("checked above that the class is live")
            .unique_key = unique_key.map(str::to_owned);
        write_durably(&self.path, &next)?;
        self.state = next;
        Ok(())
    }

    fn info(&self, record: &Record) -> NamespaceInfo {
        let unique_key = match &record.unique_key {
            Some(key) => key.clone(),
            None => derived_unique_key(&self.state.installation_secret, &record.id),
        };
        NamespaceInfo {
            id: record.id,
            class_name: record.class_name.clone(),
            unique_key,
            sqlite: record.sqlite,
        }
    }
}

fn derived_unique_key(secret: &Secret, id: &NamespaceId) -> String {
    let mac = Hmac::<Sha256>::new_from_slice(&secret.0)
        .expect("HMAC accepts keys of any length")
        .chain_update(UNIQUE_KEY_CONTEXT)
        .chain_update(id.as_bytes())
        .finalize()
        .into_bytes();
    encode_hex(&mac)
}

/// The state after applying the pending migrations, and what they did; `state` is untouched.
fn plan(state: &State, migrations: &[Migration]) -> Result<(State, Applied), Error> {
    let mut tags = BTreeSet::new();
    for (index, migration) in migrations.iter().enumerate() {
        if migration.tag.is_empty() {
            return Err(Error::EmptyTag { number: index + 1 });
        }
        if !tags.insert(migration.tag.as_str()) {
            return Err(Error::DuplicateTag {
                tag: migration.tag.clone(),
            });
        }
    }
    let pending = match &state.migration_tag {
        None => migrations,
        // As wrangler: no migrations configured means nothing to apply.
        Some(_) if migrations.is_empty() => migrations,
        Some(last) => match migrations
            .iter()
            .position(|migration| migration.tag == *last)
        {
            Some(index) => &migrations[index + 1..],
            None => return Err(Error::TagNotFound { tag: last.clone() }),
        },
    };
    let mut next = state.clone();
    let mut applied = Applied::default();
    for migration in pending {
        apply_one(&mut next, migration, &mut applied.changes)?;
        next.applied_tags.push(migration.tag.clone());
        next.migration_tag = Some(migration.tag.clone());
        applied.tags.push(migration.tag.clone());
    }
    Ok((next, applied))
}

fn apply_one(
    state: &mut State,
    migration: &Migration,
    changes: &mut Vec<Change>,
) -> Result<(), Error> {
    let tag = &migration.tag;
    let mut mentioned = BTreeSet::new();
    let classes = migration
        .new_classes
        .iter()
        .chain(&migration.new_sqlite_classes)
        .chain(
            migration
                .renamed_classes
                .iter()
                .flat_map(|r| [&r.from, &r.to]),
        )
        .chain(&migration.deleted_classes)
        .chain(migration.transferred_classes.iter().map(|t| &t.to));
    for class in classes {
        if class.is_empty() {
            return Err(Error::EmptyClassName { tag: tag.clone() });
        }
        if !mentioned.insert(class.as_str()) {
            return Err(Error::DuplicateTarget {
                tag: tag.clone(),
                class: class.clone(),
            });
        }
    }
    if let Some(transfer) = migration.transferred_classes.first() {
        return Err(Error::TransferUnsupported {
            tag: tag.clone(),
            from: transfer.from.clone(),
            from_script: transfer.from_script.clone(),
            to: transfer.to.clone(),
        });
    }

    let created = (migration.new_classes.iter().map(|class| (class, false))).chain(
        migration
            .new_sqlite_classes
            .iter()
            .map(|class| (class, true)),
    );
    for (class, sqlite) in created {
        // System classes exist implicitly; a user class may not take their names.
        if state.live(class).is_some() || class.starts_with(SYSTEM_CLASS_PREFIX) {
            return Err(Error::ClassExists {
                tag: tag.clone(),
                class: class.clone(),
                operation: Operation::Create,
            });
        }
        let id = loop {
            // 2^-128 per existing namespace; the loop makes "never reused" a fact, not a bet.
            let candidate = NamespaceId::random()?;
            if state.namespaces.iter().all(|record| record.id != candidate) {
                break candidate;
            }
        };
        state.namespaces.push(Record {
            id,
            class_name: class.clone(),
            sqlite,
            created_by_tag: tag.clone(),
            unique_key: None,
            deleted_by_tag: None,
        });
        changes.push(Change::Created {
            tag: tag.clone(),
            class_name: class.clone(),
            id,
            sqlite,
        });
    }

    for renamed in &migration.renamed_classes {
        let operation = || Operation::Rename {
            from: renamed.from.clone(),
            to: renamed.to.clone(),
        };
        if state.live(&renamed.to).is_some() || renamed.to.starts_with(SYSTEM_CLASS_PREFIX) {
            return Err(Error::ClassExists {
                tag: tag.clone(),
                class: renamed.to.clone(),
                operation: operation(),
            });
        }
        let Some(record) = state.live_mut(&renamed.from) else {
            return Err(Error::ClassNotFound {
                tag: tag.clone(),
                class: renamed.from.clone(),
                operation: operation(),
            });
        };
        record.class_name = renamed.to.clone();
        changes.push(Change::Renamed {
            tag: tag.clone(),
            from: renamed.from.clone(),
            to: renamed.to.clone(),
            id: record.id,
        });
    }

    for class in &migration.deleted_classes {
        let Some(record) = state.live_mut(class) else {
            return Err(Error::ClassNotFound {
                tag: tag.clone(),
                class: class.clone(),
                operation: Operation::Delete,
            });
        };
        record.deleted_by_tag = Some(tag.clone());
        changes.push(Change::Deleted {
            tag: tag.clone(),
            class_name: class.clone(),
            id: record.id,
        });
    }
    Ok(())
}

fn check_bindings(state: &State, bindings: &[DurableObjectBinding]) -> Result<(), Error> {
    // A binding with a script_name names a class of another Worker, whose migrations are its own.
    for binding in bindings
        .iter()
        .filter(|binding| binding.script_name.is_none())
    {
        if state.live(&binding.class_name).is_some() {
            continue;
        }
        let deleted = state
            .namespaces
            .iter()
            .any(|record| record.class_name == binding.class_name);
        let (binding, class) = (binding.name.clone(), binding.class_name.clone());
        return Err(if deleted {
            Error::BindingToDeletedClass { binding, class }
        } else {
            Error::BindingWithoutClass { binding, class }
        });
    }
    Ok(())
}

/// Creates `dir` and any missing parents, fsyncing each parent so the new entries survive a crash.
fn create_dir_durably(dir: &Path) -> Result<(), Error> {
    let mut missing = Vec::new();
    let mut current = Some(dir);
    while let Some(path) = current {
        if path.as_os_str().is_empty() || path.exists() {
            break;
        }
        missing.push(path);
        current = path.parent();
    }
    for path in missing.into_iter().rev() {
        match fs::create_dir(path) {
            Ok(()) => {}
            // Someone else made it meanwhile: fine, as long as it is there now.
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(Error::Io {
                    action: "cannot create directory",
                    path: path.to_owned(),
                    source,
                });
            }
        }
        sync_parent(path)?;
    }
    Ok(())
}

/// Replaces `path` with `state`: temporary file, fsync, rename, fsync of the directory.
fn write_durably(path: &Path, state: &State) -> Result<(), Error> {
    let mut bytes = serde_json::to_vec_pretty(state).expect("the state is plain JSON");
    bytes.push(b'\n');
    let temporary = path.with_extension("json.tmp");
    let io_error = |action, path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&temporary)
        .map_err(io_error("cannot create", &temporary))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_error("cannot write", &temporary))?;
    drop(file);
    fs::rename(&temporary, path).map_err(io_error("cannot replace", path))?;
    sync_parent(path)
}

fn sync_parent(path: &Path) -> Result<(), Error> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    fs::File::open(parent)
        .and_then(|directory| directory.sync_all())
        .map_err(|source| Error::Io {
            action: "cannot sync directory",
            path: parent.to_owned(),
            source,
        })
}
