fn main() -> std::process::ExitCode {
    stackbake::run(std::env::args_os())
}
