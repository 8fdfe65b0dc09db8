//! With feature `tch`, embed libtorch's library directory as an rpath so binaries and tests find
//! `libtorch_cpu.so` without `LD_LIBRARY_PATH` (torch-sys is `links = "tch"` and exports it).

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
