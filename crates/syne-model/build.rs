include!("build_torch.rs");

fn main() {
    link_libtorch();
}
