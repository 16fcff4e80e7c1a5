//! Empty on purpose: the program lives in `main.rs`, built for the bpf target by `tui/build.rs`.
#![no_std]
