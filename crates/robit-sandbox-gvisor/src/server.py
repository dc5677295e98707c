# Runs inside the gVisor sandbox as `python3 -I -u -B -c <this>`. It imports the data
# libraries ahead of time, says it is ready on stderr, then reads a length line and that
# many bytes of source from stdin and runs them in __main__ (the rest of stdin is the
# program's). One program per sandbox: the sandbox is destroyed afterwards.
#
# matplotlib uses the Agg backend; plt.show() saves every open figure as figure-N.png in
# the working directory (the run's scratch, returned as files), and figures still open at
# the end are saved the same way, so a chart comes back even without plt.show().
def _robit_main():
    import os
    import sys

    # matplotlib's font cache was built into the read-only rootfs; copy it to the writable
    # config dir, or matplotlib rebuilds it on every start.
    try:
        import shutil

        cache = "/usr/local/share/robit/matplotlib"
        conf = os.environ.get("MPLCONFIGDIR")
        if conf and os.path.isdir(cache):
            shutil.copytree(cache, conf, dirs_exist_ok=True)
    except Exception:
        pass
    for name in ("numpy", "pandas", "scipy"):
        try:
            __import__(name)
        except Exception:
            pass
    saved = [0]
    plt = None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        def save_open_figures(*args, **kwargs):
            for num in list(plt.get_fignums()):
                fig = plt.figure(num)
                if fig.axes:
                    saved[0] += 1
                    fig.savefig("figure-%d.png" % saved[0])
                plt.close(fig)

        plt.show = save_open_figures
    except Exception:
        plt = None
    compile(b"pass", "<string>", "exec")

    os.write(2, b"\x00robit-ready\n")
    b = sys.stdin.buffer
    src = b.read(int(b.readline()))
    g = globals()
    del g["_robit_main"]
    status = 0
    try:
        try:
            code = compile(src, "<string>", "exec")
        except SyntaxError as e:
            sys.excepthook(type(e), e.with_traceback(None), None)
            status = 1
        else:
            del b, src
            exec(code, g)
    except SystemExit as e:
        if e.code is None:
            status = 0
        elif isinstance(e.code, int):
            status = e.code
        else:
            print(e.code, file=sys.stderr)
            status = 1
    except BaseException as e:
        e = e.with_traceback(e.__traceback__.tb_next)
        sys.excepthook(type(e), e, e.__traceback__)
        status = 1
    # Before atexit: matplotlib's own exit handler closes every figure.
    if plt is not None:
        try:
            plt.show()
        except Exception as e:
            print("robit: could not save the open figures: %s" % e, file=sys.stderr)
    import atexit

    atexit._run_exitfuncs()
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:
            pass
    os._exit(status)


_robit_main()
