//! Links libtorch for the crate's tests (`build_torch.rs`) and compiles `csrc/native.cpp`
//! (libtorch facilities tch does not bind) against the libtorch that torch-sys links: its lib
//! dir arrives as `DEP_TCH_LIBTORCH_LIB` (torch-sys's `links = "tch"`), the headers sit next to it.
include!("build_torch.rs");

fn main() {
    link_libtorch();
    println!("cargo:rerun-if-changed=csrc/native.cpp");
    let lib = std::path::PathBuf::from(std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys exports DEP_TCH_LIBTORCH_LIB"));
    let root = lib.parent().expect("libtorch lib dir has a parent").to_path_buf();
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(root.join("include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        // The element-wise loops vectorise only at -O3 and when FP compares may be if-converted
        // (no FP exception flags are read anywhere).
        .opt_level(3)
        .flag("-fno-trapping-math")
        .file("csrc/native.cpp")
        .compile("syne_native");
}
