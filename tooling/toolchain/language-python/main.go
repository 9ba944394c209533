// Command pulumi-language-python is a minimal Pulumi language host for Python programs.
//
// The upstream host lives in a Go module that the module proxy does not serve, so this one is
// written against the published SDK instead: the gRPC contract from sdk/v3/proto/go, the
// virtualenv and toolchain handling from sdk/v3/python/toolchain, and the Python side is the
// `pulumi-language-python-exec` shim shipped in the same SDK module, installed next to this
// binary. It covers what `pulumi preview/up/destroy/refresh`, `pulumi install`, `pulumi about`
// and Python policy packs (`--policy-pack`) need; code generation (`pulumi convert`, `pulumi
// package gen-sdk`, `pulumi new` templating) is not implemented.
//
// The engine starts it as `pulumi-language-python [--logtostderr] [-v=N] [--tracing URL]
// ENGINE_ADDRESS` and reads the port of its gRPC server from the first line of stdout.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/blang/semver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
)

const (
	// execShimName is the Python entry point (from the SDK module) that configures the Pulumi
	// runtime from its flags and runs the user's program; it must sit next to this binary.
	execShimName = "pulumi-language-python-exec"

	// exitAfterUserMessage is the shim's exit code for "an error was already reported to the
	// user": the engine should stop without printing a second, generic error.
	exitAfterUserMessage = 32

	// engineHealthInterval is how often the host checks that the engine is still alive, so that
	// it exits instead of lingering when the CLI is killed.
	engineHealthInterval = 5 * time.Minute
)

func main() {
	// The engine may also pass --logtostderr and -v=N: the SDK's logging package (through
	// glog) registers those flags itself, and InitLogging reads them.
	tracing := flag.String("tracing", "", "Emit tracing to a Zipkin-compatible endpoint")
	flag.Parse()
	logging.InitLogging(false, 0, false)

	self, err := os.Executable()
	if err != nil {
		cmdutil.Exit(fmt.Errorf("locating this executable: %w", err))
	}
	shim := filepath.Join(filepath.Dir(self), execShimName)
	if _, err := os.Stat(shim); err != nil {
		cmdutil.Exit(fmt.Errorf("missing executor %s: %w", shim, err))
	}

	host := &pythonHost{exec: shim, tracing: *tracing}
	if args := flag.Args(); len(args) > 0 {
		host.engineAddress = args[0]
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if host.engineAddress != "" {
		if err := rpcutil.Healthcheck(ctx, host.engineAddress, engineHealthInterval, cancel); err != nil {
			cmdutil.Exit(fmt.Errorf("starting engine health check: %w", err))
		}
	}

	stop := make(chan bool)
	go func() {
		<-ctx.Done()
		close(stop)
	}()
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stop,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
		Options: rpcutil.OTelServerInterceptorOptions(),
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("starting the language host gRPC server: %w", err))
	}

	// The engine reads this line to learn where to connect.
	fmt.Printf("%d\n", handle.Port)

	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("language host stopped serving: %w", err))
	}
}

// pythonHost implements pulumirpc.LanguageRuntimeServer. Methods it does not override answer
// codes.Unimplemented through the embedded type.
type pythonHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	exec    string
	tracing string

	mu            sync.Mutex // guards engineAddress, which Handshake may set
	engineAddress string
}

func (h *pythonHost) engine() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.engineAddress
}

// Handshake records the engine address. The engine sends it here when it attaches to an
// already running host (PULUMI_DEBUG_LANGUAGES) instead of passing it on the command line.
func (h *pythonHost) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	if req.EngineAddress != "" {
		h.mu.Lock()
		h.engineAddress = req.EngineAddress
		h.mu.Unlock()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

// GetPluginInfo reports the Pulumi version this host was built for.
func (h *pythonHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

// resolveToolchain maps the project's `runtime.options` (toolchain, virtualenv, typechecker)
// onto the SDK's toolchain resolver, the same options the upstream host reads.
func resolveToolchain(info *pulumirpc.ProgramInfo) (toolchain.Toolchain, toolchain.PythonOptions, error) {
	if info == nil {
		return nil, toolchain.PythonOptions{}, status.Error(codes.InvalidArgument, "missing program info")
	}
	opts := toolchain.PythonOptions{
		Root:       info.RootDirectory,
		ProgramDir: info.ProgramDirectory,
		Toolchain:  toolchain.Pip,
	}
	options := info.GetOptions().AsMap()
	if v, ok := options["virtualenv"].(string); ok {
		opts.Virtualenv = v
	}
	switch name, _ := options["toolchain"].(string); name {
	case "", "pip":
		// pip is the default whatever lock files lie around, as upstream.
	case "poetry":
		opts.Toolchain = toolchain.Poetry
	case "uv":
		opts.Toolchain = toolchain.Uv
	default:
		return nil, opts, fmt.Errorf("runtime option toolchain must be one of pip, poetry, uv, got %q", name)
	}
	if tc, ok := options["typechecker"].(string); ok && tc != "" {
		return nil, opts, fmt.Errorf("runtime option typechecker=%q is not supported by this language host; "+
			"run the type checker before `pulumi` instead", tc)
	}
	tc, err := toolchain.ResolveToolchain(opts)
	return tc, opts, err
}

// Run executes the program through the exec shim with the venv's interpreter, passing the
// same flags and PULUMI_CONFIG* variables that the shim and the Python SDK read.
func (h *pythonHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	tc, _, err := resolveToolchain(req.Info)
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}

	args := []string{"-u", h.exec}
	flagArg := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name, value)
		}
	}
	flagArg("monitor", req.MonitorAddress)
	flagArg("engine", h.engine())
	flagArg("project", req.Project)
	flagArg("root_directory", req.Info.RootDirectory)
	flagArg("stack", req.Stack)
	flagArg("pwd", req.Pwd)
	flagArg("dry_run", strconv.FormatBool(req.DryRun))
	flagArg("parallel", strconv.Itoa(int(req.Parallel)))
	flagArg("tracing", h.tracing)
	flagArg("organization", req.Organization)
	entry := req.Info.EntryPoint
	if entry == "" {
		entry = "."
	}
	args = append(args, entry)
	args = append(args, req.Args...)

	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return nil, err
	}
	// An empty stack config must reach Python as {} and [], not null.
	configMap := req.Config
	if configMap == nil {
		configMap = map[string]string{}
	}
	config, err := json.Marshal(configMap)
	if err != nil {
		return nil, fmt.Errorf("serializing config: %w", err)
	}
	secretKeys := req.ConfigSecretKeys
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secretKeysJSON, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, fmt.Errorf("serializing secret config keys: %w", err)
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeysJSON))
	// The engine shows whatever the host writes to its own stdout and stderr.
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	logging.V(5).Infof("language host launching: %s", cmd.String())

	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not run the Python program: %v", err)}, nil
		}
		code := exitErr.ExitCode()
		if code == exitAfterUserMessage {
			return &pulumirpc.RunResponse{Bail: true}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("program exited with non-zero exit code: %d", code)}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// GetRequiredPackages lists the resource plugins that the installed Pulumi packages declare in
// their pulumi-plugin.json, so the engine can check them before running the program.
func (h *pythonHost) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	deps, err := pluginDependencies(ctx, req.Info)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: deps}, nil
}

// GetRequiredPlugins is the older form of GetRequiredPackages, still called by some commands.
func (h *pythonHost) GetRequiredPlugins(
	ctx context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	deps, err := pluginDependencies(ctx, req.Info)
	if err != nil {
		return nil, err
	}
	plugins := make([]*pulumirpc.PluginDependency, 0, len(deps))
	for _, d := range deps {
		plugins = append(plugins, &pulumirpc.PluginDependency{
			Name: d.Name, Kind: d.Kind, Version: d.Version, Server: d.Server, Checksums: d.Checksums,
		})
	}
	return &pulumirpc.GetRequiredPluginsResponse{Plugins: plugins}, nil
}

// sysPathScript prints the interpreter's import path; every Pulumi package found on it carries
// a pulumi-plugin.json at the top of its import package.
const sysPathScript = "import json, sys; print(json.dumps([p for p in sys.path if p]))"

func pluginDependencies(ctx context.Context, info *pulumirpc.ProgramInfo) ([]*pulumirpc.PackageDependency, error) {
	tc, _, err := resolveToolchain(info)
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}
	cmd, err := tc.Command(ctx, "-c", sysPathScript)
	if err != nil {
		return nil, err
	}
	cmd.Dir = info.ProgramDirectory
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing Python import paths with `%s`: %w", cmd.String(), err)
	}
	var paths []string
	if err := json.Unmarshal(out, &paths); err != nil {
		return nil, fmt.Errorf("parsing Python import paths: %w", err)
	}

	seen := map[string]bool{}
	var deps []*pulumirpc.PackageDependency
	for _, dir := range paths {
		files, err := filepath.Glob(filepath.Join(dir, "*", "pulumi-plugin.json"))
		if err != nil {
			return nil, err
		}
		sort.Strings(files)
		for _, file := range files {
			dep, err := packageDependency(file)
			if err != nil {
				return nil, err
			}
			if dep == nil {
				continue
			}
			key := dep.Name + "@" + dep.Version
			if dep.Parameterization != nil {
				key += "/" + dep.Parameterization.Name
			}
			if !seen[key] {
				seen[key] = true
				deps = append(deps, dep)
			}
		}
	}
	return deps, nil
}

// packageDependency reads one pulumi-plugin.json; it returns nil for packages that declare no
// resource plugin (for example pulumi-policy).
func packageDependency(path string) (*pulumirpc.PackageDependency, error) {
	meta, err := plugin.LoadPulumiPluginJSON(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if !meta.Resource {
		return nil, nil
	}
	name := meta.Name
	if name == "" {
		// Upstream derives the name from the distribution name, pulumi_<name> here.
		name = strings.TrimPrefix(filepath.Base(filepath.Dir(path)), "pulumi_")
	}
	if meta.Version == "" {
		return nil, fmt.Errorf("%s names no plugin version", path)
	}
	dep := &pulumirpc.PackageDependency{
		Name:    name,
		Kind:    "resource",
		Version: "v" + strings.TrimPrefix(meta.Version, "v"),
		Server:  meta.Server,
	}
	if p := meta.Parameterization; p != nil {
		dep.Parameterization = &pulumirpc.PackageParameterization{Name: p.Name, Version: p.Version, Value: p.Value}
	}
	return dep, nil
}

// InstallDependencies creates the virtualenv when needed and installs requirements.txt (or the
// uv/poetry project) into it, streaming the tool's output back to the CLI.
func (h *pythonHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	tc, opts, err := resolveToolchain(req.Info)
	if err != nil {
		return err
	}
	closer, stdout, stderr, err := rpcutil.MakeInstallDependenciesStreams(server, req.IsTerminal)
	if err != nil {
		return err
	}
	defer closer.Close()

	ctx := server.Context()
	if err := tc.EnsureVenv(ctx, opts.Root, req.UseLanguageVersionTools, true, stdout, stderr); err != nil {
		return err
	}
	if err := tc.InstallDependencies(ctx, opts.Root, req.UseLanguageVersionTools, true, stdout, stderr); err != nil {
		return err
	}
	return closer.Close()
}

// GetProgramDependencies lists the packages installed for the program (`pulumi about`).
func (h *pythonHost) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	tc, _, err := resolveToolchain(req.Info)
	if err != nil {
		return nil, err
	}
	packages, err := tc.ListPackages(ctx, req.TransitiveDependencies)
	if err != nil {
		return nil, err
	}
	deps := make([]*pulumirpc.DependencyInfo, 0, len(packages))
	for _, p := range packages {
		deps = append(deps, &pulumirpc.DependencyInfo{Name: p.Name, Version: p.Version})
	}
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: deps}, nil
}

// aboutPip prints what About reports for the pip toolchain, from one interpreter start.
const aboutPip = `import importlib.metadata, platform, sys
try:
    pip = importlib.metadata.version("pip")
except importlib.metadata.PackageNotFoundError:
    pip = ""
print(sys.executable, platform.python_version(), pip, sep="\n")`

// About reports the interpreter in use (`pulumi about`). The CLI asks it for the metadata of every preview
// and update too, beside the program: for pip, the SDK's toolchain answer starts Python three times, once as
// `python -m pip --version`, which imports pip (0.4 s of CPU on a machine of two cores that the program, the
// policy pack and the engine share); one start that reads pip's version from its metadata says the same.
func (h *pythonHost) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	tc, opts, err := resolveToolchain(req.Info)
	if err != nil {
		return nil, err
	}
	if opts.Toolchain != toolchain.Pip {
		about, err := tc.About(ctx)
		if err != nil {
			return nil, err
		}
		return aboutResponse(about.PythonExecutable, about.PythonVersion.String(), about.ToolchainVersion), nil
	}
	cmd, err := tc.Command(ctx, "-c", aboutPip)
	if err != nil {
		return nil, err
	}
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("asking the Python interpreter about itself: %w", err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != 3 {
		return nil, fmt.Errorf("asking the Python interpreter about itself: expected 3 lines, got %q", out)
	}
	python, err := semver.ParseTolerant(lines[1])
	if err != nil {
		return nil, fmt.Errorf("asking the Python interpreter about itself: version %q: %w", lines[1], err)
	}
	// As the SDK's answer: a pip that is missing or unreadable leaves the toolchain version empty (0.0.0).
	pip, _ := semver.ParseTolerant(lines[2])
	return aboutResponse(lines[0], python.String(), pip), nil
}

func aboutResponse(executable, version string, toolchainVersion semver.Version) *pulumirpc.AboutResponse {
	return &pulumirpc.AboutResponse{
		Executable: executable,
		Version:    version,
		Metadata:   map[string]string{"toolchainVersion": toolchainVersion.String()},
	}
}

// RunPlugin runs a plugin written in Python, which is how the engine starts a Python policy
// pack: `python <pack dir> <engine args...>` executes the pack's __main__.py, which serves the
// analyzer and prints its port. Its output and exit code are streamed back to the engine.
func (h *pythonHost) RunPlugin(
	req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer,
) error {
	tc, _, err := resolveToolchain(req.Info)
	if err != nil {
		return err
	}
	ctx := server.Context()
	if err := tc.ValidateVenv(ctx); err != nil {
		return err
	}
	args := append([]string{"-u", req.Info.ProgramDirectory}, req.Args...)
	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return err
	}
	closer, stdout, stderr, err := rpcutil.MakeRunPluginStreams(server, false)
	if err != nil {
		return err
	}
	defer closer.Close()

	cmd.Dir = req.Pwd
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, req.Env...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			return fmt.Errorf("could not run the Python plugin: %w", err)
		}
		code := exitErr.ExitCode()
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		return server.Send(&pulumirpc.RunPluginResponse{
			Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(code)}, //nolint:gosec // exit codes fit
		})
	}
	return closer.Close()
}

// RuntimeOptionsPrompts has no extra questions for `pulumi new`.
func (h *pythonHost) RuntimeOptionsPrompts(
	context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

// Template leaves a newly instantiated template as it is (requirements.txt with pip).
func (h *pythonHost) Template(context.Context, *pulumirpc.TemplateRequest) (*pulumirpc.TemplateResponse, error) {
	return &pulumirpc.TemplateResponse{}, nil
}
