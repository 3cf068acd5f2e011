// Package scrape reads a Prometheus /metrics page as a person checking
// it would: each metric's value, summed over its labels. The soak and the
// fault tests read the service's figures through it.
package scrape

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Sums parses the text exposition format and returns, by metric name,
// the sum of its samples over every label set. A histogram's _bucket,
// _sum and _count are names of their own; comments and lines that do not
// parse are left out.
func Sums(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		name := line[:sp]
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		if v, err := strconv.ParseFloat(line[sp+1:], 64); err == nil {
			out[name] += v
		}
	}
	return out, sc.Err()
}

// Get fetches url with client and returns its Sums. An answer other than
// 200 OK is an error.
func Get(client *http.Client, url string) (map[string]float64, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return Sums(resp.Body)
}
