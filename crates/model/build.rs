//! With feature `tch`: embed libtorch's library directory as an rpath so binaries and tests find
//! `libtorch_cpu.so` without `LD_LIBRARY_PATH` (torch-sys is `links = "tch"` and exports it),
//! and compile `src/kernels/torch_ops.cpp` (ATen operators tch does
//! not bind) against that libtorch.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else { return };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    #[cfg(feature = "tch")]
    compile_torch_ops(std::path::Path::new(&dir));
}

#[cfg(feature = "tch")]
fn compile_torch_ops(lib: &std::path::Path) {
    let source = "src/kernels/torch_ops.cpp";
    println!("cargo:rerun-if-changed={source}");
    let include = lib.parent().expect("libtorch's lib dir has a parent").join("include");
    // torch-sys's default for the C++ ABI (PyPI wheels since 2.7 use the new one).
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_string());
    cc::Build::new()
        .cpp(true)
        .file(source)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .warnings(false)
        .compile("hybrid_ir_torch_ops");
}
