//! FTP client, file choice and `check` against real servers.

mod common;

use common::ftpserver::*;

#[test]
fn helper_serves_files_to_a_logged_in_user() {
    let root = tempfile::tempdir().unwrap();
    put_file(
        root.path(),
        "seg/a__1.csv",
        b"x\n",
        at("2020-10-01T00:00:00Z"),
    );
    let server = FtpServer::start(root.path());
    let mut ftp = suppaftp::FtpStream::connect(("127.0.0.1", server.port())).unwrap();
    assert!(ftp.login(USER, "wrong").is_err());
    ftp.login(USER, PASSWORD).unwrap();
    let lines = ftp.mlsd(Some("/seg")).unwrap();
    assert!(lines.iter().any(|l| l.contains("a__1.csv")), "{lines:?}");
}
