//! Errors from loading a configuration: each names the file, and where it can, the line and column
//! (syntax errors) or the key path and the allowed values (invalid values).

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No configuration file in the directory.
    #[error(
        "no wrangler.json, wrangler.jsonc or wrangler.toml found in {}",
        dir.display()
    )]
    NotFound {
        /// The directory searched.
        dir: PathBuf,
    },
    /// The file (or directory) could not be read.
    #[error("{}: {error}", path.display())]
    Read {
        /// The path that failed.
        path: PathBuf,
        /// The I/O error. (Not a `#[source]`: the message already contains it, and error chains
        /// would print it twice.)
        error: io::Error,
    },
    /// The file is not valid TOML or JSON(C).
    #[error("{}:{line}:{column}: {message}", file.display())]
    Syntax {
        /// The configuration file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// The parser's description.
        message: String,
    },
    /// The file parsed, but some values are invalid. Every problem found is listed.
    #[error("{}", Problems { file, problems })]
    Invalid {
        /// The configuration file.
        file: PathBuf,
        /// One entry per invalid value, in file order where possible.
        problems: Vec<Problem>,
    },
    /// An environment was selected with `--env` that the file does not define.
    #[error(
        "{}: no environment named \"{name}\" (--env {name}); the file defines: {}",
        file.display(),
        defined.join(", ")
    )]
    UnknownEnvironment {
        /// The configuration file.
        file: PathBuf,
        /// The name asked for.
        name: String,
        /// The names the file defines.
        defined: Vec<String>,
    },
    /// Problems that involve several configuration files (`-c a.toml -c b.toml`).
    #[error("{}", messages.join("\n"))]
    Conflict {
        /// One message per problem, each naming the files and keys involved.
        messages: Vec<String>,
    },
}

/// One invalid value: the key path (`queues.consumers[0].max_batch_size`) and what is wrong,
/// including the allowed values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path with array indices, as written in the file (`env.staging.` prefixed when
    /// the value came from an environment).
    pub key: String,
    /// What is wrong, starting after the key, e.g. `= 500 is out of range (allowed 1..=100)`.
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.key, self.detail)
    }
}

struct Problems<'a> {
    file: &'a PathBuf,
    problems: &'a [Problem],
}

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {problem}", self.file.display())?;
        }
        Ok(())
    }
}
