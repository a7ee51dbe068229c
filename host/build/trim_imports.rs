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
pub fn componentize(core: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut plan = Plan::new(core)?;
    let mut module = wasm_encoder::Module::new();
    plan.parse_core_module(&mut module, Parser::new(0), core)?;
    wit_component::ComponentEncoder::default()
        .validate(true)
        .merge_imports_based_on_semver(true)
        .module(module.as_slice())?
        .encode()
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
