// compose-config loads a Compose file the way `docker compose config` does (compose-go: the
// Compose specification's JSON schema, interpolation, merging of anchors and extends,
// normalisation) and prints the resulting model as JSON. It also parses every Dockerfile a
// service builds with BuildKit's own Dockerfile parser, and checks that each `COPY --from`
// names an earlier stage or an image. It needs no container engine: deploy/compose/check.py
// runs it in CI, where none is.
//
// Usage: compose-config -f docker-compose.yml [-env-file example.env]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

func main() {
	file := flag.String("f", "docker-compose.yml", "Compose file")
	envFile := flag.String("env-file", "", "variables to interpolate (the process environment is not used)")
	flag.Parse()
	if err := run(*file, *envFile); err != nil {
		fmt.Fprintln(os.Stderr, "compose-config:", err)
		os.Exit(1)
	}
}

func run(file, envFile string) error {
	opts := []cli.ProjectOptionsFn{
		cli.WithName("horsestream"),
		cli.WithWorkingDirectory(filepath.Dir(file)),
		cli.WithProfiles([]string{"*"}), // every service, the one-shot tools included
	}
	if envFile != "" {
		opts = append(opts, cli.WithEnvFiles(envFile), cli.WithDotEnv)
	}
	po, err := cli.NewProjectOptions([]string{file}, opts...)
	if err != nil {
		return err
	}
	project, err := po.LoadProject(context.Background())
	if err != nil {
		return err
	}
	for _, name := range project.ServiceNames() {
		s := project.Services[name]
		if s.Build == nil {
			continue
		}
		df := s.Build.Dockerfile
		if !filepath.IsAbs(df) {
			df = filepath.Join(s.Build.Context, df)
		}
		if err := checkDockerfile(df); err != nil {
			return fmt.Errorf("service %s: %w", name, err)
		}
	}
	out, err := json.MarshalIndent(project, "", "  ")
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(append(out, '\n'))
	return err
}

func checkDockerfile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	ast, err := parser.Parse(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	stages, _, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(stages) == 0 {
		return fmt.Errorf("%s: no FROM", path)
	}
	seen := map[string]bool{}
	for i, st := range stages {
		for _, cmd := range st.Commands {
			c, ok := cmd.(*instructions.CopyCommand)
			if !ok || c.From == "" {
				continue
			}
			from := strings.ToLower(c.From)
			// An earlier stage by name or index, else an image reference (contains ':' or '/').
			if !seen[from] && !strings.ContainsAny(from, ":/") {
				return fmt.Errorf("%s: stage %d copies --from=%s, which no earlier stage is", path, i, c.From)
			}
		}
		seen[strings.ToLower(st.Name)] = true
		seen[fmt.Sprint(i)] = true
	}
	return nil
}
