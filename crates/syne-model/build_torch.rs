// Shared by the build scripts of crates whose binaries or tests link libtorch (included with
// `include!`): give them an rpath to the libtorch that torch-sys built against, so they run
// without LD_LIBRARY_PATH, and force `libtorch_cuda` to be linked when it exists (the linker
// would otherwise drop it as unused, and CUDA would be unavailable at run time).
fn link_libtorch() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else { return };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-L{lib}");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
