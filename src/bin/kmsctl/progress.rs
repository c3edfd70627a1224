//! A progress bar on stderr for `encrypt` and `decrypt` of large files,
//! drawn only when stderr is a terminal, so scripts and pipes see nothing.

use std::io::IsTerminal;
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};

/// Inputs smaller than this finish before a bar would be worth drawing.
const THRESHOLD: u64 = 16 * 1024 * 1024;

/// A bar for reading `input` (a file, or `-` for stdin), hidden unless it
/// is wanted, stderr is a terminal and the input is a large regular file.
pub fn for_input(input: &Path, wanted: bool) -> ProgressBar {
    let total = if input.as_os_str() == "-" {
        None
    } else {
        std::fs::metadata(input)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    };
    match total {
        Some(total) if wanted && total >= THRESHOLD && std::io::stderr().is_terminal() => {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{bytes:>10}/{total_bytes:<10} [{wide_bar}] {binary_bytes_per_sec:>12} eta {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        }
        _ => ProgressBar::hidden(),
    }
}
