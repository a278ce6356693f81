//! TypeScript to JavaScript in-process with oxc: types are stripped (and `enum`/`namespace`
//! lowered), nothing else is transformed, so `burrow dev` runs `.ts` entry points without Node.
//! Each stripped module's source map is kept (by path, one per file) so that [`map_stack`] can
//! put the `.ts` lines and columns into the stacks of uncaught exceptions.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use std::path::Path;

use oxc_allocator::Allocator;
use oxc_codegen::{Codegen, CodegenOptions};
use oxc_diagnostics::Severity;
use oxc_parser::Parser;
use oxc_semantic::SemanticBuilder;
use oxc_span::SourceType;
use oxc_transformer::{TransformOptions, Transformer};

/// Whether `path` names a TypeScript module by its extension.
pub(crate) fn is_typescript(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("ts" | "mts" | "cts" | "tsx")
    )
}

/// Strips the types from the TypeScript module `source` read from `path`. A syntax error
/// comes back as `file:line:column: message`.
pub(crate) fn strip(path: &Path, source: &str) -> Result<String, String> {
    let allocator = Allocator::default();
    let source_type = SourceType::from_path(path)
        .unwrap_or_else(|_| SourceType::ts())
        .with_module(true);
    let parsed = Parser::new(&allocator, source, source_type).parse();
    if let Some(error) = parsed
        .diagnostics
        .iter()
        .find(|d| d.severity == Severity::Error)
    {
        let offset = error
            .labels
            .first()
            .map(|label| label.offset() as usize)
            .unwrap_or(0);
        return Err(located(path, source, offset, &error.message));
    }
    if parsed.panicked {
        return Err(format!("{}: cannot parse the module", path.display()));
    }
    let mut program = parsed.program;
    // The enum transform needs the enum members' values evaluated (without them oxc panics,
    // which aborts the process from inside QuickJS's module loader).
    let scoping = SemanticBuilder::new()
        .with_enum_eval(true)
        .build(&program)
        .semantic
        .into_scoping();
    let options = TransformOptions::default();
    let transformed =
        Transformer::new(&allocator, path, &options).build_with_scoping(scoping, &mut program);
    if let Some(error) = transformed
        .diagnostics
        .iter()
        .find(|d| d.severity == Severity::Error)
    {
        let offset = error
            .labels
            .first()
            .map(|label| label.offset() as usize)
            .unwrap_or(0);
        return Err(located(path, source, offset, &error.message));
    }
    let generated = Codegen::new()
        .with_options(CodegenOptions {
            source_map_path: Some(path.to_path_buf()),
            ..CodegenOptions::default()
        })
        .build(&program);
    if let Some(map) = &generated.map {
        let mut lines: Vec<Vec<(u32, u32, u32)>> = Vec::new();
        for token in map.get_tokens() {
            let line = token.get_dst_line() as usize;
            if lines.len() <= line {
                lines.resize_with(line + 1, Vec::new);
            }
            lines[line].push((
                token.get_dst_col(),
                token.get_src_line(),
                token.get_src_col(),
            ));
        }
        for line in &mut lines {
            line.sort_unstable();
        }
        let mut maps = LINE_MAPS.lock().unwrap_or_else(PoisonError::into_inner);
        let maps = maps.get_or_insert_with(HashMap::new);
        maps.insert(path.to_path_buf(), Arc::new(LineMap { lines }));
    }
    Ok(generated.code)
}

/// Where the generated code's positions came from: per generated line, (generated column,
/// source line, source column), all 0-based, sorted.
struct LineMap {
    lines: Vec<Vec<(u32, u32, u32)>>,
}

impl LineMap {
    /// The source position (1-based) of a generated position (1-based).
    fn lookup(&self, line: u32, column: u32) -> Option<(u32, u32)> {
        let tokens = self.lines.get(line.checked_sub(1)? as usize)?;
        let column = column.saturating_sub(1);
        let index = tokens.partition_point(|token| token.0 <= column);
        let token = tokens.get(index.saturating_sub(1))?;
        Some((token.1 + 1, token.2 + 1 + column.saturating_sub(token.0)))
    }
}

/// The source maps of the TypeScript modules stripped in this process, by path.
static LINE_MAPS: Mutex<Option<HashMap<PathBuf, Arc<LineMap>>>> = Mutex::new(None);

/// `text` (an exception with its stack) with every `path:line:column` of a stripped TypeScript
/// module turned into the position in the `.ts` source.
pub(crate) fn map_stack(text: &str) -> String {
    let maps = {
        let maps = LINE_MAPS.lock().unwrap_or_else(PoisonError::into_inner);
        match maps.as_ref() {
            Some(maps) if !maps.is_empty() => maps.clone(),
            _ => return text.to_owned(),
        }
    };
    let mut out = String::with_capacity(text.len());
    for (index, line) in text.split('\n').enumerate() {
        if index > 0 {
            out.push('\n');
        }
        out.push_str(&map_line(line, &maps));
    }
    out
}

/// One stack line: `at name (path:line:column)` or `at path:line:column`.
fn map_line(line: &str, maps: &HashMap<PathBuf, Arc<LineMap>>) -> String {
    let trimmed = line.trim_end();
    let (start, end) = match (trimmed.rfind('('), trimmed.ends_with(')')) {
        (Some(open), true) => (open + 1, trimmed.len() - 1),
        _ => match trimmed.trim_start().strip_prefix("at ") {
            Some(rest) => (trimmed.len() - rest.len(), trimmed.len()),
            None => return line.to_owned(),
        },
    };
    let location = &trimmed[start..end];
    let mut parts = location.rsplitn(3, ':');
    let (Some(column), Some(row), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
        return line.to_owned();
    };
    let (Ok(column), Ok(row)) = (column.parse::<u32>(), row.parse::<u32>()) else {
        return line.to_owned();
    };
    let Some((row, column)) = maps
        .get(Path::new(path))
        .and_then(|map| map.lookup(row, column))
    else {
        return line.to_owned();
    };
    format!(
        "{}{path}:{row}:{column}{}",
        &trimmed[..start],
        &trimmed[end..]
    )
}

/// `file:line:column: message` for a byte offset into `source`.
pub(crate) fn located(path: &Path, source: &str, offset: usize, message: &str) -> String {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("{}:{line}:{column}: {message}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_types_and_keeps_code() {
        let code = strip(
            Path::new("a.ts"),
            "interface A { x: number }\nexport const f = (a: A): number => a.x + 1;\n",
        )
        .unwrap();
        assert!(!code.contains("interface"), "{code}");
        assert!(code.contains("a.x + 1"), "{code}");
    }

    #[test]
    fn enums_and_const_enums_are_lowered() {
        let code = strip(
            Path::new("e.ts"),
            "enum Mode { A, B = 5, C }\nconst enum Flag { X = 1 << 2 }\nexport const v = [Mode.B, Mode.C, Flag.X, Mode[0]];\n",
        )
        .unwrap();
        assert!(!code.contains("enum "), "{code}");
        assert!(code.contains("Mode"), "{code}");
    }

    #[test]
    fn syntax_errors_name_the_file_and_line() {
        let error = strip(Path::new("src/b.ts"), "const a = 1;\nconst = ;\n").unwrap_err();
        assert!(error.starts_with("src/b.ts:2:"), "{error}");
    }
}
