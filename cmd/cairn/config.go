package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/config"
)

func newConfigCmd(environ []string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print or check configuration files",
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "default",
			Short: "Print the default configuration, every key commented",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				_, err := fmt.Fprint(cmd.OutOrStdout(), config.Template())
				return err
			},
		},
		&cobra.Command{
			Use:   "validate FILE",
			Short: "Check a configuration file, with the CAIRN_ variables of the environment over it",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				file := args[0]
				cfg, err := loadConfig(file, environ)
				if err != nil {
					return err
				}
				if err := cfg.Validate(); err != nil {
					return withSources(err, sources(cmd, file, environ))
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", file)
				return err
			},
		},
	)
	return cmd
}

// loadConfig returns the defaults, with the file over them if file is not
// empty, and the CAIRN_ variables of environ over both.
func loadConfig(file string, environ []string) (config.Config, error) {
	cfg := config.Default()
	if file != "" {
		var err error
		if cfg, err = config.Load(file); err != nil {
			return config.Config{}, err
		}
	}
	if err := cfg.ApplyEnv(environ); err != nil {
		return config.Config{}, err
	}
	return cfg, nil
}

// sources maps every key to where its value came from, last layer first: a
// flag of cmd that was given, a variable of environ, or the file.
func sources(cmd *cobra.Command, file string, environ []string) map[string]string {
	src := map[string]string{}
	for _, k := range config.Keys() {
		if file != "" {
			src[k] = file
		}
	}
	byEnv := map[string]string{}
	for _, k := range config.Keys() {
		byEnv[config.EnvName(k)] = k
	}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if k, ok := byEnv[name]; ok {
			src[k] = name
		}
	}
	for _, sf := range serveFlags {
		if fl := cmd.Flags().Lookup(sf.flag); fl != nil && fl.Changed {
			src[sf.key] = "--" + sf.flag
		}
	}
	return src
}

// withSources fills in the Source of the *config.Errors in err (joined or
// not) from src, and returns err.
func withSources(err error, src map[string]string) error {
	switch e := err.(type) {
	case *config.Error:
		if e.Source == "" {
			e.Source = src[e.Key]
		}
	case interface{ Unwrap() []error }:
		for _, err := range e.Unwrap() {
			withSources(err, src)
		}
	}
	return err
}
