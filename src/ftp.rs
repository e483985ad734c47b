//! The FTP / FTPS client layer over suppaftp.
