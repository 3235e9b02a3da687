//! `sqlx::migrate!` embeds `migrations/` at compile time but does not tell Cargo to
//! watch it: without this, a new migration is left out until something else rebuilds
//! the crate.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
