fn main() {
    println!("tools");
}
