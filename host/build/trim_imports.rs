//! Turns the guest's core module into its component with only the imports a
//! handler can reach: `nexus:handler` and WASI's clocks and randomness.
//!
//! Rust's std links more of WASI (stdio, the environment, files, `exit`),
//! reached only by paths a handler cannot take (a panic's message, `getenv`).
//! Each import costs every instantiation: a lowered host function, a shim
//! table slot, a resource table. So each such import becomes a function of
//! the module itself whose body is `unreachable`: the guest traps where the
//! empty WASI context would have failed anyway.
//!
//! Function indices: kept imports first, in their order; then the module's
//! own functions (shifted down by the number of removed imports); then the
//! stubs, in the order of the imports they replace.

use wasm_encoder::reencode::{self, Reencode};
use wasmparser::{Parser, Payload, TypeRef};

/// The WASI interfaces a handler uses: `Date.now()`, `performance.now()`,
/// `Math.random()` reseeding, and std's `HashMap` keys.
const KEPT_WASI: [&str; 2] = ["wasi:clocks/", "wasi:random/"];

fn kept(module: &str) -> bool {
    !module.starts_with("wasi:") || KEPT_WASI.iter().any(|p| module.starts_with(p))
}

/// The type index of a function import; `None` for other imports.
fn func_type(ty: TypeRef) -> Option<u32> {
    match ty {
        TypeRef::Func(ty) | TypeRef::FuncExact(ty) => Some(ty),
        _ => None,
    }
}

/// Trims `core` (a module linked with `--skip-wit-component`, so still
/// holding its `component-type` sections) and encodes it as a component.
#[cfg_attr(test, allow(dead_code))] // the unit tests cover `trim`
pub fn componentize(core: &[u8]) -> anyhow::Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .validate(true)
        .merge_imports_based_on_semver(true)
        .module(&trim(core)?)?
        .encode()
}

/// `core` without the function imports no handler can reach: each is a
/// function of the module whose body is `unreachable`.
pub fn trim(core: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut plan = Plan::new(core)?;
    let mut module = wasm_encoder::Module::new();
    plan.parse_core_module(&mut module, Parser::new(0), core)?;
    Ok(module.finish())
}

struct Plan {
    /// New index of each function import.
    imports: Vec<u32>,
    /// How many function imports are removed.
    removed: u32,
    /// Type index of each stub, in order.
    stub_types: Vec<u32>,
}

impl Plan {
    fn new(core: &[u8]) -> anyhow::Result<Self> {
        let mut funcs = Vec::new();
        let mut defined = 0u32;
        for payload in Parser::new(0).parse_all(core) {
            match payload? {
                Payload::ImportSection(section) => {
                    for import in section.into_imports() {
                        let import = import?;
                        if let Some(ty) = func_type(import.ty) {
                            funcs.push((kept(import.module), ty));
                        }
                    }
                }
                Payload::FunctionSection(section) => defined = section.count(),
                _ => {}
            }
        }
        let kept_count = funcs.iter().filter(|(keep, ..)| *keep).count() as u32;
        let (mut next_kept, mut next_stub) = (0, kept_count + defined);
        let mut plan = Plan {
            imports: Vec::with_capacity(funcs.len()),
            removed: funcs.len() as u32 - kept_count,
            stub_types: Vec::new(),
        };
        for (keep, ty) in funcs {
            if keep {
                plan.imports.push(next_kept);
                next_kept += 1;
            } else {
                plan.imports.push(next_stub);
                next_stub += 1;
                plan.stub_types.push(ty);
            }
        }
        Ok(plan)
    }
}

impl Reencode for Plan {
    type Error = std::convert::Infallible;

    fn function_index(&mut self, func: u32) -> Result<u32, reencode::Error> {
        Ok(match self.imports.get(func as usize) {
            Some(&new) => new,
            None => func - self.removed,
        })
    }

    fn parse_import_section(
        &mut self,
        imports: &mut wasm_encoder::ImportSection,
        section: wasmparser::ImportSectionReader<'_>,
    ) -> Result<(), reencode::Error> {
        for import in section.into_imports() {
            let import = import?;
            if func_type(import.ty).is_none() || kept(import.module) {
                imports.import(import.module, import.name, self.entity_type(import.ty)?);
            }
        }
        Ok(())
    }

    fn parse_function_section(
        &mut self,
        functions: &mut wasm_encoder::FunctionSection,
        section: wasmparser::FunctionSectionReader<'_>,
    ) -> Result<(), reencode::Error> {
        reencode::utils::parse_function_section(self, functions, section)?;
        for ty in self.stub_types.clone() {
            functions.function(self.type_index(ty)?);
        }
        Ok(())
    }

    fn parse_code_section(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        section: wasmparser::CodeSectionReader<'_>,
    ) -> Result<(), reencode::Error> {
        reencode::utils::parse_code_section(self, code, section)?;
        for _ in &self.stub_types {
            let mut body = wasm_encoder::Function::new([]);
            body.instructions().unreachable().end();
            code.function(&body);
        }
        Ok(())
    }

    fn parse_custom_name_subsection(
        &mut self,
        names: &mut wasm_encoder::NameSection,
        section: wasmparser::Name<'_>,
    ) -> Result<(), reencode::Error> {
        // Stubs move to the end of the index space; a name map stays sorted.
        let wasmparser::Name::Function(map) = section else {
            return reencode::utils::parse_custom_name_subsection(self, names, section);
        };
        let mut sorted = Vec::new();
        for naming in map {
            let naming = naming?;
            sorted.push((self.function_index(naming.index)?, naming.name));
        }
        sorted.sort_by_key(|(index, _)| *index);
        let mut map = wasm_encoder::NameMap::new();
        for (index, name) in sorted {
            map.append(index, name);
        }
        names.functions(&map);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_encoder::{
        CodeSection, EntityType, ExportKind, ExportSection, Function, FunctionSection,
        ImportSection, Module, NameMap, NameSection, TypeSection, ValType,
    };
    use wasmparser::{KnownCustom, Name, Operator};

    /// Imports two trimmed and two kept functions, interleaved; its one own
    /// function, `run`, calls each import once.
    fn module() -> Vec<u8> {
        let mut types = TypeSection::new();
        types.ty().function([], [ValType::I64]);
        types.ty().function([ValType::I32], []);
        let mut imports = ImportSection::new();
        let imported = [
            ("wasi:cli/environment@0.2.0", "get-arguments", 1),
            ("wasi:clocks/monotonic-clock@0.2.0", "now", 0),
            ("wasi:cli/exit@0.2.0", "exit", 1),
            ("nexus:handler/log@0.1.0", "log", 1),
        ];
        let mut names = NameMap::new();
        for (index, (module, name, ty)) in imported.into_iter().enumerate() {
            imports.import(module, name, EntityType::Function(ty));
            names.append(index as u32, name);
        }
        names.append(4, "run");
        let mut functions = FunctionSection::new();
        functions.function(0);
        let mut exports = ExportSection::new();
        exports.export("run", ExportKind::Func, 4);
        let mut run = Function::new([]);
        run.instructions()
            .i32_const(0)
            .call(0)
            .i32_const(1)
            .call(2)
            .i32_const(2)
            .call(3)
            .call(1)
            .end();
        let mut code = CodeSection::new();
        code.function(&run);
        let mut name_section = NameSection::new();
        name_section.functions(&names);
        let mut module = Module::new();
        module
            .section(&types)
            .section(&imports)
            .section(&functions)
            .section(&exports)
            .section(&code)
            .section(&name_section);
        module.finish()
    }

    #[derive(Default, Debug)]
    struct Seen {
        imports: Vec<String>,
        export: Option<u32>,
        bodies: Vec<Vec<String>>,
        names: Vec<(u32, String)>,
    }

    fn read(wasm: &[u8]) -> Seen {
        let mut seen = Seen::default();
        for payload in Parser::new(0).parse_all(wasm) {
            match payload.unwrap() {
                Payload::ImportSection(section) => {
                    for import in section.into_imports() {
                        let import = import.unwrap();
                        seen.imports
                            .push(format!("{}#{}", import.module, import.name));
                    }
                }
                Payload::ExportSection(section) => {
                    seen.export = section.into_iter().next().map(|e| e.unwrap().index);
                }
                Payload::CodeSectionEntry(body) => {
                    let ops = body.get_operators_reader().unwrap();
                    let body = ops
                        .into_iter()
                        .map(|op| match op.unwrap() {
                            Operator::Call { function_index } => format!("call {function_index}"),
                            Operator::Unreachable => "unreachable".to_owned(),
                            Operator::I32Const { .. } | Operator::End => String::new(),
                            other => format!("{other:?}"),
                        })
                        .filter(|op| !op.is_empty())
                        .collect();
                    seen.bodies.push(body);
                }
                Payload::CustomSection(custom) => {
                    if let KnownCustom::Name(reader) = custom.as_known() {
                        for name in reader {
                            if let Name::Function(map) = name.unwrap() {
                                for naming in map {
                                    let naming = naming.unwrap();
                                    seen.names.push((naming.index, naming.name.to_owned()));
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        seen
    }

    #[test]
    fn unreachable_wasi_imports_become_functions_that_trap() {
        let trimmed = trim(&module()).unwrap();
        wasmparser::Validator::new().validate_all(&trimmed).unwrap();
        let seen = read(&trimmed);
        // Kept: clocks and the world's own imports, in their order.
        assert_eq!(
            seen.imports,
            [
                "wasi:clocks/monotonic-clock@0.2.0#now",
                "nexus:handler/log@0.1.0#log"
            ]
        );
        // `run` moved down to 2; the stubs follow it, in import order.
        assert_eq!(seen.export, Some(2));
        assert_eq!(
            seen.bodies,
            [
                vec!["call 3", "call 4", "call 1", "call 0"],
                vec!["unreachable"],
                vec!["unreachable"],
            ]
        );
        // The name map stays sorted by the new indices.
        let names: Vec<_> = seen.names.iter().map(|(i, n)| format!("{i} {n}")).collect();
        assert_eq!(
            names,
            ["0 now", "1 log", "2 run", "3 get-arguments", "4 exit"]
        );
    }

    #[test]
    fn a_module_with_nothing_to_trim_is_unchanged_in_meaning() {
        let mut types = TypeSection::new();
        types.ty().function([], [ValType::I64]);
        let mut imports = ImportSection::new();
        imports.import(
            "wasi:random/random@0.2.0",
            "get-random-u64",
            EntityType::Function(0),
        );
        let mut module = Module::new();
        module.section(&types).section(&imports);
        let trimmed = trim(&module.finish()).unwrap();
        assert_eq!(
            read(&trimmed).imports,
            ["wasi:random/random@0.2.0#get-random-u64"]
        );
    }
}
