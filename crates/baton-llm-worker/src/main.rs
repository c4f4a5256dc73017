//! llama.cpp worker process (work in progress).
fn main() {}
