package dockerfile

import (
	"slices"
	"strings"
	"testing"
)

func TestBases(t *testing.T) {
	for _, c := range []struct {
		name, text string
		args       map[string]string
		want       []Base
	}{
		{"one stage", "FROM debian:bookworm-slim\nRUN true\n", nil, []Base{{Image: "debian:bookworm-slim"}}},
		{"multi-stage with platform flag and a stage reference",
			"# syntax=docker/dockerfile:1\nFROM --platform=$BUILDPLATFORM node:20-trixie AS deps\nRUN npm ci\n\nfrom deps as build\nRUN npm run build\nFROM node:20-trixie-slim\nCOPY --from=build /app /app\n",
			map[string]string{"BUILDPLATFORM": "linux/amd64", "TARGETPLATFORM": "linux/arm64"}, []Base{{"node:20-trixie", "linux/amd64"}, {Image: "node:20-trixie-slim"}}},
		{"global ARG default, overridden and continued lines",
			"ARG BASE=python:3.13-slim-trixie\nARG RUNTIME=gcr.io/distroless/cc-debian13:nonroot\nFROM \\\n  ${BASE} AS b\nFROM $RUNTIME\n",
			map[string]string{"RUNTIME": "debian:bookworm-slim"}, []Base{{Image: "python:3.13-slim-trixie"}, {Image: "debian:bookworm-slim"}}},
		{"defaults in the reference", "ARG TAG=\nFROM rust:${TAG:-1-slim-trixie}\nFROM debian:${SUITE-bookworm}\n", nil,
			[]Base{{Image: "rust:1-slim-trixie"}, {Image: "debian:bookworm"}}},
		{"scratch and repeats", "FROM debian:bookworm AS a\nFROM debian:bookworm AS b\nFROM scratch\nCOPY --from=a / /\n", nil,
			[]Base{{Image: "debian:bookworm"}}},
		{"an ARG after FROM is not global", "ARG V=1\nFROM debian:bookworm\nARG V=2\nFROM node:$V\n", nil, []Base{{Image: "debian:bookworm"}, {Image: "node:1"}}},
	} {
		got, err := Bases(c.text, c.args)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: Bases = %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}

func TestBasesErrors(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"RUN true\n", "no FROM line"},
		{"FROM ${BASE}\n", `"${BASE}" uses BASE, which no ARG before the first FROM sets`},
		{"FROM --platform=linux/amd64\n", "FROM names no image"},
	} {
		_, err := Bases(c.text, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.text, err, c.want)
		}
	}
}
