fn main() {
    println!("{}", serde_json::json!({ "tool": "tools" }));
}
