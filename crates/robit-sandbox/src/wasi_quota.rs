//! WASI preview 1 with a disk quota: [`QuotaWasi`] wraps wasmtime-wasi's `WasiP1Ctx`,
//! passes every call through unchanged, and in front of the calls that can grow a file or
//! create a name asks [`DiskUse`] first. A refusal traps, which ends the run at once with
//! [`Outcome::DiskLimit`](crate::Outcome::DiskLimit) (an errno could be caught and retried
//! by the program; a trap cannot).
//!
//! Enforcement happens before the host performs the write, so a run never holds more than
//! its quota on disk, whatever the size of a single write. Everything not about the disk is
//! a plain delegation; this module must not change what a guest can reach.

use wasmtime_wasi::p1::types::{self, Errno, Error};
use wasmtime_wasi::p1::wasi_snapshot_preview1::WasiSnapshotPreview1 as Wasi;
use wasmtime_wasi::p1::WasiP1Ctx;
use wiggle::{GuestMemory, GuestPtr};

use crate::disk::{DiskDenied, DiskUse};

/// The guest's WASI context: wasmtime-wasi's, behind the disk quota.
pub(crate) struct QuotaWasi {
    inner: WasiP1Ctx,
    disk: DiskUse,
}

impl QuotaWasi {
    pub(crate) fn new(inner: WasiP1Ctx, disk: DiskUse) -> QuotaWasi {
        QuotaWasi { inner, disk }
    }
}

fn refuse(why: DiskDenied) -> Error {
    Error::trap(wasmtime::Error::new(why))
}

/// Whether `e` is wasmtime-wasi saying "no such file".
fn is_noent(e: &Error) -> bool {
    e.downcast_ref() == Some(&Errno::Noent)
}

/// The most bytes a write of `ciovs` can carry (the sum, although wasmtime-wasi writes
/// only the first non-empty buffer per call: over-asking is safe, under-asking is not).
fn write_len(mem: &GuestMemory<'_>, ciovs: &types::CiovecArray) -> Result<u64, Error> {
    let mut total = 0u64;
    for iov in ciovs.iter() {
        let iov = mem.read(iov?)?;
        total = total.saturating_add(u64::from(iov.buf_len));
    }
    Ok(total)
}

impl QuotaWasi {
    /// The identity and size of `fd` when it is a regular file; `None` otherwise (stdio,
    /// directories, a bad descriptor: the delegated call then reports its own error).
    async fn file_stat(&mut self, mem: &mut GuestMemory<'_>, fd: types::Fd) -> Option<(u64, u64)> {
        match self.inner.fd_filestat_get(mem, fd).await {
            Ok(st) if st.filetype == types::Filetype::RegularFile => Some((st.ino, st.size)),
            _ => None,
        }
    }

    /// Charges a write to `fd` before it happens; returns the file to settle afterwards.
    async fn before_write(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        ciovs: &types::CiovecArray,
        offset: Option<u64>,
    ) -> Result<Option<u64>, Error> {
        let Some((id, size)) = self.file_stat(mem, fd).await else {
            return Ok(None);
        };
        let len = write_len(mem, ciovs)?;
        let append = self
            .inner
            .fd_fdstat_get(mem, fd)
            .await?
            .fs_flags
            .contains(types::Fdflags::APPEND);
        // Append mode ignores the offset (Linux `pwrite` semantics, as wasmtime-wasi does).
        let at = match (append, offset) {
            (true, _) => size,
            (false, Some(offset)) => offset,
            (false, None) => self.inner.fd_tell(mem, fd)?,
        };
        let end = size.max(at.saturating_add(len));
        self.disk.grow(id, size, end).map_err(refuse)?;
        Ok(Some(id))
    }

    /// Records the size `fd` really has now.
    async fn settle(&mut self, mem: &mut GuestMemory<'_>, fd: types::Fd) {
        if let Some((id, size)) = self.file_stat(mem, fd).await {
            self.disk.settle(id, size);
        }
    }
}

impl Wasi for QuotaWasi {
    fn set_hostcall_fuel(&mut self, fuel: usize) {
        self.inner.set_hostcall_fuel(fuel);
    }

    // ---- The calls that can grow the disk. ----

    async fn fd_write(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        ciovs: types::CiovecArray,
    ) -> Result<types::Size, Error> {
        let file = self.before_write(mem, fd, &ciovs, None).await?;
        let result = self.inner.fd_write(mem, fd, ciovs).await;
        if file.is_some() {
            self.settle(mem, fd).await;
        }
        result
    }

    async fn fd_pwrite(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        ciovs: types::CiovecArray,
        offset: types::Filesize,
    ) -> Result<types::Size, Error> {
        let file = self.before_write(mem, fd, &ciovs, Some(offset)).await?;
        let result = self.inner.fd_pwrite(mem, fd, ciovs, offset).await;
        if file.is_some() {
            self.settle(mem, fd).await;
        }
        result
    }

    async fn fd_filestat_set_size(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        size: types::Filesize,
    ) -> Result<(), Error> {
        if let Some((id, current)) = self.file_stat(mem, fd).await {
            self.disk.grow(id, current, size).map_err(refuse)?;
        }
        let result = self.inner.fd_filestat_set_size(mem, fd, size).await;
        self.settle(mem, fd).await;
        result
    }

    fn fd_allocate(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        offset: types::Filesize,
        len: types::Filesize,
    ) -> Result<(), Error> {
        // wasmtime-wasi answers `NOTSUP` here; should that change, this must learn to
        // charge it first, so refuse rather than let it through uncounted.
        self.inner.fd_allocate(mem, fd, offset, len)?;
        Err(Errno::Notsup.into())
    }

    async fn path_open(
        &mut self,
        mem: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        dirflags: types::Lookupflags,
        path: GuestPtr<str>,
        oflags: types::Oflags,
        fs_rights_base: types::Rights,
        fs_rights_inheriting: types::Rights,
        fdflags: types::Fdflags,
    ) -> Result<types::Fd, Error> {
        let creates = oflags.contains(types::Oflags::CREAT)
            && match self
                .inner
                .path_filestat_get(mem, dirfd, dirflags, path)
                .await
            {
                Ok(_) => false,
                Err(e) => is_noent(&e),
            };
        if creates {
            self.disk.add_entry().map_err(refuse)?;
        }
        let result = self
            .inner
            .path_open(
                mem,
                dirfd,
                dirflags,
                path,
                oflags,
                fs_rights_base,
                fs_rights_inheriting,
                fdflags,
            )
            .await;
        if creates && result.is_err() {
            self.disk.remove_entry();
        }
        let fd = result?;
        if creates || oflags.contains(types::Oflags::TRUNC) {
            // A new file starts at 0; a truncated one gives its charged bytes back.
            self.settle(mem, fd).await;
        }
        Ok(fd)
    }

    async fn path_create_directory(
        &mut self,
        mem: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        path: GuestPtr<str>,
    ) -> Result<(), Error> {
        self.disk.add_entry().map_err(refuse)?;
        let result = self.inner.path_create_directory(mem, dirfd, path).await;
        if result.is_err() {
            self.disk.remove_entry();
        }
        result
    }

    async fn path_link(
        &mut self,
        mem: &mut GuestMemory<'_>,
        src_fd: types::Fd,
        src_flags: types::Lookupflags,
        src_path: GuestPtr<str>,
        target_fd: types::Fd,
        target_path: GuestPtr<str>,
    ) -> Result<(), Error> {
        self.disk.add_entry().map_err(refuse)?;
        let result = self
            .inner
            .path_link(mem, src_fd, src_flags, src_path, target_fd, target_path)
            .await;
        if result.is_err() {
            self.disk.remove_entry();
        }
        result
    }

    async fn path_symlink(
        &mut self,
        mem: &mut GuestMemory<'_>,
        src_path: GuestPtr<str>,
        dirfd: types::Fd,
        dest_path: GuestPtr<str>,
    ) -> Result<(), Error> {
        self.disk.add_entry().map_err(refuse)?;
        let result = self
            .inner
            .path_symlink(mem, src_path, dirfd, dest_path)
            .await;
        if result.is_err() {
            self.disk.remove_entry();
        }
        result
    }

    async fn path_unlink_file(
        &mut self,
        mem: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        path: GuestPtr<str>,
    ) -> Result<(), Error> {
        self.inner.path_unlink_file(mem, dirfd, path).await?;
        self.disk.remove_entry();
        Ok(())
    }

    async fn path_remove_directory(
        &mut self,
        mem: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        path: GuestPtr<str>,
    ) -> Result<(), Error> {
        self.inner.path_remove_directory(mem, dirfd, path).await?;
        self.disk.remove_entry();
        Ok(())
    }

    // ---- Everything else: unchanged. ----

    fn args_get(
        &mut self,
        mem: &mut GuestMemory<'_>,
        argv: GuestPtr<GuestPtr<u8>>,
        argv_buf: GuestPtr<u8>,
    ) -> Result<(), Error> {
        self.inner.args_get(mem, argv, argv_buf)
    }

    fn args_sizes_get(
        &mut self,
        mem: &mut GuestMemory<'_>,
    ) -> Result<(types::Size, types::Size), Error> {
        self.inner.args_sizes_get(mem)
    }

    fn environ_get(
        &mut self,
        mem: &mut GuestMemory<'_>,
        environ: GuestPtr<GuestPtr<u8>>,
        environ_buf: GuestPtr<u8>,
    ) -> Result<(), Error> {
        self.inner.environ_get(mem, environ, environ_buf)
    }

    fn environ_sizes_get(
        &mut self,
        mem: &mut GuestMemory<'_>,
    ) -> Result<(types::Size, types::Size), Error> {
        self.inner.environ_sizes_get(mem)
    }

    fn clock_res_get(
        &mut self,
        mem: &mut GuestMemory<'_>,
        id: types::Clockid,
    ) -> Result<types::Timestamp, Error> {
        self.inner.clock_res_get(mem, id)
    }

    fn clock_time_get(
        &mut self,
        mem: &mut GuestMemory<'_>,
        id: types::Clockid,
        precision: types::Timestamp,
    ) -> Result<types::Timestamp, Error> {
        self.inner.clock_time_get(mem, id, precision)
    }

    async fn fd_advise(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        offset: types::Filesize,
        len: types::Filesize,
        advice: types::Advice,
    ) -> Result<(), Error> {
        self.inner.fd_advise(mem, fd, offset, len, advice).await
    }

    async fn fd_close(&mut self, mem: &mut GuestMemory<'_>, fd: types::Fd) -> Result<(), Error> {
        self.inner.fd_close(mem, fd).await
    }

    async fn fd_datasync(&mut self, mem: &mut GuestMemory<'_>, fd: types::Fd) -> Result<(), Error> {
        self.inner.fd_datasync(mem, fd).await
    }

    async fn fd_fdstat_get(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
    ) -> Result<types::Fdstat, Error> {
        self.inner.fd_fdstat_get(mem, fd).await
    }

    fn fd_fdstat_set_flags(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        flags: types::Fdflags,
    ) -> Result<(), Error> {
        self.inner.fd_fdstat_set_flags(mem, fd, flags)
    }

    fn fd_fdstat_set_rights(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        fs_rights_base: types::Rights,
        fs_rights_inheriting: types::Rights,
    ) -> Result<(), Error> {
        self.inner
            .fd_fdstat_set_rights(mem, fd, fs_rights_base, fs_rights_inheriting)
    }

    async fn fd_filestat_get(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
    ) -> Result<types::Filestat, Error> {
        self.inner.fd_filestat_get(mem, fd).await
    }

    async fn fd_filestat_set_times(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        atim: types::Timestamp,
        mtim: types::Timestamp,
        fst_flags: types::Fstflags,
    ) -> Result<(), Error> {
        self.inner
            .fd_filestat_set_times(mem, fd, atim, mtim, fst_flags)
            .await
    }

    async fn fd_read(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        iovs: types::IovecArray,
    ) -> Result<types::Size, Error> {
        self.inner.fd_read(mem, fd, iovs).await
    }

    async fn fd_pread(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        iovs: types::IovecArray,
        offset: types::Filesize,
    ) -> Result<types::Size, Error> {
        self.inner.fd_pread(mem, fd, iovs, offset).await
    }

    fn fd_prestat_get(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
    ) -> Result<types::Prestat, Error> {
        self.inner.fd_prestat_get(mem, fd)
    }

    fn fd_prestat_dir_name(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        path: GuestPtr<u8>,
        path_max_len: types::Size,
    ) -> Result<(), Error> {
        self.inner.fd_prestat_dir_name(mem, fd, path, path_max_len)
    }

    async fn fd_renumber(
        &mut self,
        mem: &mut GuestMemory<'_>,
        from: types::Fd,
        to: types::Fd,
    ) -> Result<(), Error> {
        self.inner.fd_renumber(mem, from, to).await
    }

    async fn fd_seek(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        offset: types::Filedelta,
        whence: types::Whence,
    ) -> Result<types::Filesize, Error> {
        self.inner.fd_seek(mem, fd, offset, whence).await
    }

    async fn fd_sync(&mut self, mem: &mut GuestMemory<'_>, fd: types::Fd) -> Result<(), Error> {
        self.inner.fd_sync(mem, fd).await
    }

    fn fd_tell(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
    ) -> Result<types::Filesize, Error> {
        self.inner.fd_tell(mem, fd)
    }

    async fn fd_readdir(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        buf: GuestPtr<u8>,
        buf_len: types::Size,
        cookie: types::Dircookie,
    ) -> Result<types::Size, Error> {
        self.inner.fd_readdir(mem, fd, buf, buf_len, cookie).await
    }

    async fn path_filestat_get(
        &mut self,
        mem: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        flags: types::Lookupflags,
        path: GuestPtr<str>,
    ) -> Result<types::Filestat, Error> {
        self.inner.path_filestat_get(mem, dirfd, flags, path).await
    }

    async fn path_filestat_set_times(
        &mut self,
        mem: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        flags: types::Lookupflags,
        path: GuestPtr<str>,
        atim: types::Timestamp,
        mtim: types::Timestamp,
        fst_flags: types::Fstflags,
    ) -> Result<(), Error> {
        self.inner
            .path_filestat_set_times(mem, dirfd, flags, path, atim, mtim, fst_flags)
            .await
    }

    async fn path_readlink(
        &mut self,
        mem: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        path: GuestPtr<str>,
        buf: GuestPtr<u8>,
        buf_len: types::Size,
    ) -> Result<types::Size, Error> {
        self.inner
            .path_readlink(mem, dirfd, path, buf, buf_len)
            .await
    }

    async fn path_rename(
        &mut self,
        mem: &mut GuestMemory<'_>,
        src_fd: types::Fd,
        src_path: GuestPtr<str>,
        dest_fd: types::Fd,
        dest_path: GuestPtr<str>,
    ) -> Result<(), Error> {
        // A rename never adds bytes or names (a replaced target only removes one, which
        // is left counted: conservative).
        self.inner
            .path_rename(mem, src_fd, src_path, dest_fd, dest_path)
            .await
    }

    async fn poll_oneoff(
        &mut self,
        mem: &mut GuestMemory<'_>,
        subs: GuestPtr<types::Subscription>,
        events: GuestPtr<types::Event>,
        nsubscriptions: types::Size,
    ) -> Result<types::Size, Error> {
        self.inner
            .poll_oneoff(mem, subs, events, nsubscriptions)
            .await
    }

    fn proc_exit(&mut self, mem: &mut GuestMemory<'_>, status: types::Exitcode) -> wasmtime::Error {
        self.inner.proc_exit(mem, status)
    }

    fn proc_raise(&mut self, mem: &mut GuestMemory<'_>, sig: types::Signal) -> Result<(), Error> {
        self.inner.proc_raise(mem, sig)
    }

    fn sched_yield(&mut self, mem: &mut GuestMemory<'_>) -> Result<(), Error> {
        self.inner.sched_yield(mem)
    }

    fn random_get(
        &mut self,
        mem: &mut GuestMemory<'_>,
        buf: GuestPtr<u8>,
        buf_len: types::Size,
    ) -> Result<(), Error> {
        self.inner.random_get(mem, buf, buf_len)
    }

    fn sock_accept(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        flags: types::Fdflags,
    ) -> Result<types::Fd, Error> {
        self.inner.sock_accept(mem, fd, flags)
    }

    fn sock_recv(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        ri_data: types::IovecArray,
        ri_flags: types::Riflags,
    ) -> Result<(types::Size, types::Roflags), Error> {
        self.inner.sock_recv(mem, fd, ri_data, ri_flags)
    }

    fn sock_send(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        si_data: types::CiovecArray,
        si_flags: types::Siflags,
    ) -> Result<types::Size, Error> {
        self.inner.sock_send(mem, fd, si_data, si_flags)
    }

    fn sock_shutdown(
        &mut self,
        mem: &mut GuestMemory<'_>,
        fd: types::Fd,
        how: types::Sdflags,
    ) -> Result<(), Error> {
        self.inner.sock_shutdown(mem, fd, how)
    }
}
