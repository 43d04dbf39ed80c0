//! jhack's integration tests, one binary (one link of the crate on two cores): each
//! module is one area, run against the real binary (`CARGO_BIN_EXE_jhack`), real
//! (virtual) audio devices and real sockets. `common` holds what they share.

mod common;

mod cli_audio;
mod cli_bad_input;
mod cli_library;
mod cli_loudness;
mod cli_record;
mod decode;
mod long_file;
mod mixer;
mod peer_node;
mod peers;
mod share;
mod sync;
mod sync_bad_peers;
mod sync_files;
mod tui_attach;
mod tui_live;
mod tui_screen;
mod tui_slow;
mod voice;
mod zz_server_restart;
