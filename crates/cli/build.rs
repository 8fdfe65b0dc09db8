//! With feature `tch`: libtorch's lib dir as an rpath, so the binaries and their tests find
//! `libtorch_cpu.so` without `LD_LIBRARY_PATH` (torch-sys is `links = "tch"` and exports it),
//! and recorded for `speed op-count`, which compiles its operator counter against the same
//! libtorch. Shared by the cli and benches crates (`build = ...`); the model crate has its own.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        println!("cargo:rustc-env=HYBRID_IR_LIBTORCH_LIB={dir}");
    }
}
