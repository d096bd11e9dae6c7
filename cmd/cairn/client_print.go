package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// printer writes responses as --write-out asks: "simple" is etcdctl's plain
// text, "json" the protobuf response as JSON (protojson, with the field
// names of the .proto files), "table" aligned columns where a response is a
// list (get, member list, status) and simple text otherwise.
type printer struct {
	w      io.Writer
	format string
}

func (p *printer) isJSON() bool  { return p.format == "json" }
func (p *printer) isTable() bool { return p.format == "table" }

func (p *printer) line(format string, args ...any) {
	fmt.Fprintf(p.w, format+"\n", args...)
}

// json writes m on one line. protojson's output is deliberately unstable in
// its spacing; compacting it makes it stable.
func (p *printer) json(m proto.Message) error {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %T as JSON: %w", m, err)
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return fmt.Errorf("encode %T as JSON: %w", m, err)
	}
	out.WriteByte('\n')
	_, err = p.w.Write(out.Bytes())
	return err
}

// result prints a response that simple output shows as one line: m as JSON,
// or else the line format and args make.
func (p *printer) result(m proto.Message, format string, args ...any) error {
	if p.isJSON() {
		return p.json(m)
	}
	p.line(format, args...)
	return nil
}

// kv prints a key and its value on two lines, as etcdctl does.
func (p *printer) kv(kv *mvccpb.KeyValue, valueOnly bool) {
	if !valueOnly {
		p.line("%s", kv.Key)
	}
	p.line("%s", kv.Value)
}

func (p *printer) put(resp *pb.PutResponse) error {
	if p.isJSON() {
		return p.json(resp)
	}
	p.line("OK")
	if resp.PrevKv != nil {
		p.kv(resp.PrevKv, false)
	}
	return nil
}

// getOutput says how a get's result is shown.
type getOutput struct {
	countOnly bool
	valueOnly bool
}

func (p *printer) get(resp *pb.RangeResponse, o getOutput) error {
	switch {
	case p.isJSON():
		return p.json(resp)
	case o.countOnly:
		p.line("%d", resp.Count)
	case p.isTable():
		var rows [][]string
		for _, kv := range resp.Kvs {
			rows = append(rows, []string{string(kv.Key), string(kv.Value), fmt.Sprint(kv.CreateRevision),
				fmt.Sprint(kv.ModRevision), fmt.Sprint(kv.Version), leaseString(kv.Lease)})
		}
		p.table([]string{"key", "value", "create revision", "mod revision", "version", "lease"}, rows)
	default:
		for _, kv := range resp.Kvs {
			p.kv(kv, o.valueOnly)
		}
	}
	return nil
}

func (p *printer) del(resp *pb.DeleteRangeResponse) error {
	if p.isJSON() {
		return p.json(resp)
	}
	p.line("%d", resp.Deleted)
	for _, kv := range resp.PrevKvs {
		p.kv(kv, false)
	}
	return nil
}

func (p *printer) txn(resp *pb.TxnResponse) error {
	if p.isJSON() {
		return p.json(resp)
	}
	if resp.Succeeded {
		p.line("SUCCESS")
	} else {
		p.line("FAILURE")
	}
	simple := &printer{w: p.w, format: "simple"}
	for _, r := range resp.Responses {
		p.line("")
		switch r := r.Response.(type) {
		case *pb.ResponseOp_ResponsePut:
			simple.put(r.ResponsePut)
		case *pb.ResponseOp_ResponseRange:
			simple.get(r.ResponseRange, getOutput{})
		case *pb.ResponseOp_ResponseDeleteRange:
			simple.del(r.ResponseDeleteRange)
		case *pb.ResponseOp_ResponseTxn:
			simple.txn(r.ResponseTxn)
		}
	}
	return nil
}

func (p *printer) watch(resp *pb.WatchResponse) error {
	if p.isJSON() {
		return p.json(resp)
	}
	for _, ev := range resp.Events {
		p.line("%s", ev.Type)
		if ev.PrevKv != nil {
			p.kv(ev.PrevKv, false)
		}
		p.kv(ev.Kv, false)
	}
	return nil
}

func leaseString(id int64) string {
	if id == 0 {
		return "0"
	}
	return fmt.Sprintf("%016x", id)
}

// table writes rows under a header in a bordered table, as etcdctl's table
// output looks.
func (p *printer) table(header []string, rows [][]string) {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	border := func() {
		for _, w := range widths {
			b.WriteString("+" + strings.Repeat("-", w+2))
		}
		b.WriteString("+\n")
	}
	row := func(cells []string, center bool) {
		for i, c := range cells {
			pad := widths[i] - utf8.RuneCountInString(c)
			left := 0
			if center {
				left = pad / 2
			}
			b.WriteString("| " + strings.Repeat(" ", left) + c + strings.Repeat(" ", pad-left) + " ")
		}
		b.WriteString("|\n")
	}
	border()
	upper := make([]string, len(header))
	for i, h := range header {
		upper[i] = strings.ToUpper(h)
	}
	row(upper, true)
	border()
	for _, r := range rows {
		row(r, false)
	}
	border()
	io.WriteString(p.w, b.String())
}

// humanBytes renders n in SI units as etcdctl does ("20 kB").
func humanBytes(n int64) string {
	if n < 10 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	e := math.Floor(math.Log(float64(n)) / math.Log(1000))
	v := math.Floor(float64(n)/math.Pow(1000, e)*10+0.5) / 10
	if v < 10 {
		return fmt.Sprintf("%.1f %s", v, units[int(e)])
	}
	return fmt.Sprintf("%.0f %s", v, units[int(e)])
}
