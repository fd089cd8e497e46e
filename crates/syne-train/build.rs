include!("../syne-model/build_torch.rs");

fn main() {
    link_libtorch();
}
