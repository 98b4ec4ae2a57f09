package dashboards

import (
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// cogPanel is any panel builder.
type cogPanel = cog.Builder[dashboard.Panel]

// timeSeries is a time series panel of range queries, w grid columns wide
// and 8 rows high, with a multi-series tooltip and a table legend that
// shows the last and the largest value.
func timeSeries(title, description, unit string, w uint32, qs ...query) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasource()).
		Targets(targets(qs...)).
		Unit(unit).
		AxisSoftMin(0).
		Span(w).
		Height(8).
		LineWidth(1).
		FillOpacity(10).
		ShowPoints(common.VisibilityModeNever).
		Tooltip(common.NewVizTooltipOptionsBuilder().
			Mode(common.TooltipDisplayModeMulti).
			Sort(common.SortOrderDescending)).
		Legend(common.NewVizLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeTable).
			Placement(common.LegendPlacementBottom).
			ShowLegend(true).
			Calcs([]string{"lastNotNull", "max"}))
}

// withThresholdLines draws the panel's thresholds as dashed lines.
func withThresholdLines(p *timeseries.PanelBuilder, t *dashboard.ThresholdsConfigBuilder) *timeseries.PanelBuilder {
	return p.Thresholds(t).
		ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeDashed))
}

// stacked stacks the series (parts of one whole, like nodes per version).
func stacked(p *timeseries.PanelBuilder) *timeseries.PanelBuilder {
	return p.Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal)).FillOpacity(60)
}

// singleStat is a stat panel, 3 columns wide and 4 rows high, of the last
// value of one query, coloured by its thresholds.
func singleStat(title, description, unit, expr string, t *dashboard.ThresholdsConfigBuilder) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasource()).
		Targets(targets(q(expr, ""))).
		Unit(unit).
		Span(3).
		Height(4).
		Thresholds(t).
		ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdThresholds)).
		ColorMode(common.BigValueColorModeBackground).
		GraphMode(common.BigValueGraphModeArea).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false))
}

// instantTable is a table of instant queries merged into one row per value
// of the by labels, with the value columns renamed. Each query is summed by
// those labels: Grafana's merge joins rows on every label column, so the
// queries must agree on them (no __name__, job or instance).
func instantTable(title, description, unit string, w, h uint32, by []string, columns map[string]string, exprs ...string) *table.PanelBuilder {
	grouped := make([]string, len(exprs))
	for i, e := range exprs {
		grouped[i] = "sum by (" + strings.Join(by, ", ") + ") (" + e + ")"
	}
	rename := map[string]any{}
	for from, to := range columns {
		rename[from] = to
	}
	// Grafana names the value column of a lone query "Value", of several "Value #<refId>".
	if to, ok := columns["Value #A"]; ok && len(exprs) == 1 {
		rename["Value"] = to
	}
	return table.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasource()).
		Targets(tableTargets(grouped...)).
		Unit(unit).
		Span(w).
		Height(h).
		Filterable(true).
		Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{"sum"})).
		WithTransformation(dashboard.DataTransformerConfig{Id: "merge", Options: map[string]any{}}).
		WithTransformation(dashboard.DataTransformerConfig{Id: "organize", Options: map[string]any{
			"excludeByName": map[string]any{"Time": true},
			"renameByName":  rename,
		}})
}
