//! ecr-multiarch: build a multi-architecture image and publish it to Amazon ECR.
fn main() {}
