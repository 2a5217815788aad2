//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds the files it
//! found at compile time, and cargo tracks only those, not new files in the directory.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
