//! The guest's exports as the host calls them, on each fresh instance.
//!
//! bindgen's `instantiate` looks up and type-checks every export of the world
//! on every instance; a call uses one. Here each export is found and checked
//! once per component ([`Exports::new`]); a call then looks up only its own
//! function, by index.
//!
//! Invariant: an [`Exports`] is only made by [`Exports::new`], which checks
//! each function against the signature its caller below uses, on an instance
//! of the same component. That check is what makes `new_unchecked` sound.

use wasmtime::component::{
    Component, ComponentExportIndex, ComponentNamedList, Instance, InstancePre, Lift, Lower,
    TypedFunc,
};
use wasmtime::{AsContextMut, Result, Store};

use super::bindings::exports::nexus::handler::compiler::CompileOptions;
use super::bindings::HandlerError;
use super::host::HostState;

/// The guest's exported interfaces, as its component names them.
pub(super) const COMPILER: &str = "nexus:handler/compiler@0.1.0";
pub(super) const HANDLER: &str = "nexus:handler/handler@0.1.0";

/// The index of `interface`'s function `name` in `component`.
pub(super) fn find(
    component: &Component,
    interface: &str,
    name: &str,
) -> Result<ComponentExportIndex> {
    let interface = component.get_export_index(None, interface);
    component
        .get_export_index(interface.as_ref(), name)
        .ok_or_else(|| wasmtime::format_err!("the guest does not export {name}"))
}

type Answer<T> = (std::result::Result<T, HandlerError>,);
type CompileParams<'a> = (&'a str, &'a str, CompileOptions);
type InvokeParams<'a> = (&'a [u8], &'a str);
type InvokePreparedParams<'a> = (&'a str,);
type PrepareParams<'a> = (&'a [u8],);

/// The indices of the exports the host calls, checked against their types.
pub(crate) struct Exports {
    compile: ComponentExportIndex,
    invoke: ComponentExportIndex,
    invoke_prepared: ComponentExportIndex,
    prepare: ComponentExportIndex,
}

impl Exports {
    /// Finds the exports in `pre`'s component and checks their types on one
    /// throwaway instance, in a store from `new_store`.
    pub fn new(
        pre: &InstancePre<HostState>,
        new_store: impl Fn() -> Store<HostState>,
    ) -> Result<Self> {
        let component = pre.component();
        let exports = Exports {
            compile: find(component, COMPILER, "compile")?,
            invoke: find(component, HANDLER, "invoke")?,
            invoke_prepared: find(component, HANDLER, "invoke-prepared")?,
            prepare: find(component, HANDLER, "prepare")?,
        };
        let (instance, mut store) = first_instance(pre, new_store)?;
        instance.get_typed_func::<CompileParams, Answer<Vec<u8>>>(&mut store, exports.compile)?;
        instance.get_typed_func::<InvokeParams, Answer<String>>(&mut store, exports.invoke)?;
        instance.get_typed_func::<InvokePreparedParams, Answer<String>>(
            &mut store,
            exports.invoke_prepared,
        )?;
        instance.get_typed_func::<PrepareParams, Answer<()>>(&mut store, exports.prepare)?;
        Ok(exports)
    }

    /// The exports of `instance`, an instance of the component they were
    /// checked on.
    pub fn of(&self, instance: Instance) -> Guest<'_> {
        Guest {
            instance,
            exports: self,
        }
    }
}

/// The component's first instance, which also makes each module's
/// copy-on-write image: a sealed memfd. Sealing can fail with `EBUSY` when
/// the machine is loaded (pages just written are still held in another
/// CPU's LRU batch); a new memfd a moment later, in a new store, goes
/// through. Errors that are not transient fail every try and are returned.
fn first_instance(
    pre: &InstancePre<HostState>,
    new_store: impl Fn() -> Store<HostState>,
) -> Result<(Instance, Store<HostState>)> {
    let mut tries = 0;
    loop {
        let mut store = new_store();
        match pre.instantiate(&mut store) {
            Ok(instance) => return Ok((instance, store)),
            Err(e) if tries < 3 => {
                tries += 1;
                tracing::debug!(target: "nexus::engine", "first instance failed ({e:#}); trying again");
                std::thread::sleep(std::time::Duration::from_millis(20 * tries));
            }
            Err(e) => return Err(e),
        }
    }
}

/// One instance's exports.
pub(crate) struct Guest<'a> {
    instance: Instance,
    exports: &'a Exports,
}

impl Guest<'_> {
    /// `compiler.compile`: source to bytecode.
    pub fn compile(
        &self,
        store: &mut Store<HostState>,
        name: &str,
        source: &str,
        options: CompileOptions,
    ) -> Result<std::result::Result<Vec<u8>, HandlerError>> {
        self.call::<CompileParams, _>(store, self.exports.compile, (name, source, options))
    }

    /// `handler.invoke`: bytecode loaded, evaluated and called with `input`.
    pub fn invoke(
        &self,
        store: &mut Store<HostState>,
        bytecode: &[u8],
        input: &str,
    ) -> Result<std::result::Result<String, HandlerError>> {
        self.call::<InvokeParams, _>(store, self.exports.invoke, (bytecode, input))
    }

    /// `handler.invoke-prepared`: the snapshot's prepared handler, called.
    pub fn invoke_prepared(
        &self,
        store: &mut Store<HostState>,
        input: &str,
    ) -> Result<std::result::Result<String, HandlerError>> {
        self.call::<InvokePreparedParams, _>(store, self.exports.invoke_prepared, (input,))
    }

    /// `handler.prepare`: `bytecode` loaded and evaluated, its default
    /// export kept for `invoke_prepared`.
    pub fn prepare(
        &self,
        store: &mut Store<HostState>,
        bytecode: &[u8],
    ) -> Result<std::result::Result<(), HandlerError>> {
        self.call::<PrepareParams, _>(store, self.exports.prepare, (bytecode,))
    }

    fn call<P, R>(
        &self,
        mut store: impl AsContextMut,
        export: ComponentExportIndex,
        params: P,
    ) -> Result<R>
    where
        P: ComponentNamedList + Lower,
        R: Lift + 'static,
    {
        let func = self
            .instance
            .get_func(&mut store, export)
            .ok_or_else(|| wasmtime::format_err!("the guest lost an export"))?;
        // SAFETY: `Exports::new` checked `export` against `(P, (R,))` on an
        // instance of this component (the invariant above).
        let func = unsafe { TypedFunc::<P, (R,)>::new_unchecked(func) };
        Ok(func.call(store, params)?.0)
    }
}
