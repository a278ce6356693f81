//! TypeScript to JavaScript in-process with oxc: types are stripped (and `enum`/`namespace`
//! lowered), nothing else is transformed, so `burrow dev` runs `.ts` entry points without Node.

use std::path::Path;

use oxc_allocator::Allocator;
use oxc_codegen::Codegen;
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
    Ok(Codegen::new().build(&program).code)
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
