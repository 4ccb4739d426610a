fn main() {
    println!("migrations: nothing to do");
}
