"""The papers the lab cites, once each.

A form declaration, a claim or a task names its source as :class:`Source` (a :class:`Paper` plus the
place in it: equation, section or theorem). :data:`PAPERS` holds the papers several modules cite; a
paper only one form cites may be declared in that form's module. The book's BibTeX file is generated
from both (:func:`attnlab.bibliography.bibtex`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paper:
    """One cited work.

    Attributes:
        key: BibTeX key (``"vaswani2017attention"``).
        authors: author list in BibTeX form (``"Vaswani, Ashish and Shazeer, Noam and ..."``).
        short: how the text cites it (``"Vaswani et al."``).
        title: the title.
        year: year of the version the lab read.
        arxiv: arXiv id without version (``"1706.03762"``), or None for a work without one.
        version: the arXiv version the lab read (``"v7"``), or None when only the abstract page was read.
        venue: where it appeared (``"NeurIPS 2017"``), if anywhere.
        url: a link for works without an arXiv id.
    """

    key: str
    authors: str
    short: str
    title: str
    year: int
    arxiv: str | None = None
    version: str | None = None
    venue: str = ""
    url: str = ""

    def cite(self) -> str:
        """``"Vaswani et al. 2017 (arXiv 1706.03762v7)"``."""
        where = ""
        if self.arxiv:
            where = f" (arXiv {self.arxiv}{self.version or ''})"
        elif self.venue:
            where = f" ({self.venue})"
        return f"{self.short} {self.year}{where}"

    def bibtex(self) -> str:
        fields = {"author": self.authors, "title": "{" + self.title + "}", "year": str(self.year)}
        if self.arxiv:
            fields |= {"eprint": self.arxiv, "archivePrefix": "arXiv"}
        if self.venue:
            fields["note"] = self.venue
        if self.url:
            fields["url"] = self.url
        body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields.items())
        return f"@misc{{{self.key},\n{body}\n}}\n"


@dataclass(frozen=True)
class Source:
    """Where a statement comes from: a paper and the place in it.

    Attributes:
        paper: the paper (None for the lab's own derivations).
        locator: equation, section, theorem or algorithm (``"Eq. (1)"``, ``"§3.2, Theorem 1"``).
        quote: the source's own words (or a close paraphrase, said so), where a statement is quoted.
        abstract_level: only the abstract was read; the body may say more.
    """

    paper: Paper | None
    locator: str = ""
    quote: str = ""
    abstract_level: bool = False

    def cite(self) -> str:
        if self.paper is None:
            return "attnlab (derived)"
        parts = [self.paper.cite()]
        if self.locator:
            parts.append(self.locator)
        if self.abstract_level:
            parts.append("abstract-level")
        return ", ".join(parts)


def _papers(*papers: Paper) -> dict[str, Paper]:
    table: dict[str, Paper] = {}
    for paper in papers:
        if paper.key in table:
            raise ValueError(f"paper key {paper.key!r} is defined twice")
        table[paper.key] = paper
    return table


PAPERS: dict[str, Paper] = _papers(
    Paper(
        "vaswani2017attention",
        "Vaswani, Ashish and Shazeer, Noam and Parmar, Niki and Uszkoreit, Jakob and Jones, Llion and "
        "Gomez, Aidan N. and Kaiser, Lukasz and Polosukhin, Illia",
        "Vaswani et al.",
        "Attention Is All You Need",
        2017,
        "1706.03762",
        venue="NeurIPS 2017",
    ),
    Paper(
        "shazeer2019fast",
        "Shazeer, Noam",
        "Shazeer",
        "Fast Transformer Decoding: One Write-Head is All You Need",
        2019,
        "1911.02150",
    ),
    Paper(
        "ainslie2023gqa",
        "Ainslie, Joshua and Lee-Thorp, James and de Jong, Michiel and Zemlyanskiy, Yury and Lebr{\\'o}n, "
        "Federico and Sanghai, Sumit",
        "Ainslie et al.",
        "GQA: Training Generalized Multi-Query Transformer Models from Multi-Head Checkpoints",
        2023,
        "2305.13245",
        venue="EMNLP 2023",
    ),
    Paper(
        "dao2022flashattention",
        "Dao, Tri and Fu, Daniel Y. and Ermon, Stefano and Rudra, Atri and R{\\'e}, Christopher",
        "Dao et al.",
        "FlashAttention: Fast and Memory-Efficient Exact Attention with IO-Awareness",
        2022,
        "2205.14135",
        venue="NeurIPS 2022",
    ),
    Paper(
        "dao2023flashattention2",
        "Dao, Tri",
        "Dao",
        "FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning",
        2023,
        "2307.08691",
    ),
    Paper(
        "katharopoulos2020transformers",
        "Katharopoulos, Angelos and Vyas, Apoorv and Pappas, Nikolaos and Fleuret, Fran{\\c{c}}ois",
        "Katharopoulos et al.",
        "Transformers are RNNs: Fast Autoregressive Transformers with Linear Attention",
        2020,
        "2006.16236",
        venue="ICML 2020",
    ),
    Paper(
        "duvvuri2025laser",
        "Duvvuri, Sai Surya and Dhillon, Inderjit S.",
        "Duvvuri & Dhillon",
        "LASER: Attention with Exponential Transformation",
        2025,
        "2411.03493",
        venue="ICML 2025",
    ),
    Paper(
        "alman2024tensor",
        "Alman, Josh and Song, Zhao",
        "Alman & Song",
        "How to Capture Higher-order Correlations? Generalizing Matrix Softmax Attention to Kronecker Computation",
        2024,
        "2310.04064",
        venue="ICLR 2024",
    ),
    Paper(
        "alman2023fast",
        "Alman, Josh and Song, Zhao",
        "Alman & Song",
        "Fast Attention Requires Bounded Entries",
        2023,
        "2302.13214",
        venue="NeurIPS 2023",
    ),
    Paper(
        "roy2025fast",
        "Roy, Aurko and Chou, Timothy and Duvvuri, Sai Surya and Chen, Sijia and Yu, Jiecao and Wang, Xiaodong "
        "and Zaheer, Manzil and Anil, Rohan",
        "Roy et al.",
        "Fast and Simplex: 2-Simplicial Attention in Triton",
        2025,
        "2507.02754",
    ),
    Paper(
        "ghodsi2025heads",
        "Ghodsi, Ali",
        "Ghodsi",
        "How Many Heads Make an SSM? A Unified Framework for Attention and State Space Models",
        2025,
        "2512.15115",
    ),
    Paper(
        "qiao2025pavlovian",
        "Qiao, Mu",
        "Qiao",
        "Understanding Transformers through the Lens of Pavlovian Conditioning",
        2025,
        "2508.08289",
        "v1",
    ),
    Paper(
        "nair2025softmax",
        "Nair, Pravin",
        "Nair",
        "Softmax is $1/2$-Lipschitz: A tight bound across all $\\ell_p$ norms",
        2025,
        "2510.23012",
    ),
    Paper(
        "ye2025differential",
        "Ye, Tianzhu and Dong, Li and Xia, Yuqing and Sun, Yutao and Zhu, Yi and Huang, Gao and Wei, Furu",
        "Ye et al.",
        "Differential Transformer",
        2025,
        "2410.05258",
        venue="ICLR 2025",
    ),
    Paper(
        "deepseek2024v2",
        "{DeepSeek-AI}",
        "DeepSeek-AI",
        "DeepSeek-V2: A Strong, Economical, and Efficient Mixture-of-Experts Language Model",
        2024,
        "2405.04434",
    ),
    Paper(
        "deepseek2024v3",
        "{DeepSeek-AI}",
        "DeepSeek-AI",
        "DeepSeek-V3 Technical Report",
        2024,
        "2412.19437",
    ),
    Paper(
        "su2021roformer",
        "Su, Jianlin and Lu, Yu and Pan, Shengfeng and Murtadha, Ahmed and Wen, Bo and Liu, Yunfeng",
        "Su et al.",
        "RoFormer: Enhanced Transformer with Rotary Position Embedding",
        2021,
        "2104.09864",
    ),
    Paper(
        "zhang2019root",
        "Zhang, Biao and Sennrich, Rico",
        "Zhang & Sennrich",
        "Root Mean Square Layer Normalization",
        2019,
        "1910.07467",
        venue="NeurIPS 2019",
    ),
    Paper(
        "merullo2024talking",
        "Merullo, Jack and Eickhoff, Carsten and Pavlick, Ellie",
        "Merullo et al.",
        "Talking Heads: Understanding Inter-layer Communication in Transformer Language Models",
        2024,
        "2406.09519",
        venue="NeurIPS 2024",
    ),
    Paper(
        "jin2024moh",
        "Jin, Peng and Zhu, Bo and Yuan, Li and Yan, Shuicheng",
        "Jin et al.",
        "MoH: Multi-Head Attention as Mixture-of-Head Attention",
        2024,
        "2410.11842",
    ),
    Paper(
        "filipek2025sqa",
        "Filipek, Adam",
        "Filipek",
        "Sparse Query Attention (SQA): A Computationally Efficient Attention Mechanism with Query Heads Reduction",
        2025,
        "2510.01817",
    ),
    Paper(
        "ye2026diffv2",
        "Ye, Tianzhu and Dong, Li and Sun, Yutao and Wei, Furu",
        "Ye et al.",
        "Differential Transformer V2",
        2026,
        venue="Microsoft blog post and code, January 2026",
        url="https://github.com/microsoft/unilm/tree/master/Diff-Transformer/Diff-Transformer-V2",
    ),
    Paper(
        "lim2025gda",
        "Lim, Junghwan and Lee, Sungmin and Kim, Dongseok and Cheung, Wai Ting and Kim, Beomgyu and Kim, Taehwan "
        "and Lee, Haesol and Lee, Junhyeok and Oh, Dongpin and Park, Eunhwan",
        "Lim et al.",
        "Grouped Differential Attention",
        2025,
        "2510.06949",
    ),
    Paper(
        "takahashi2025sensitivity",
        "Takahashi, Tsubasa and Yamabe, Shojiro and Waseda, Futa and Sasaki, Kento",
        "Takahashi et al.",
        "Understanding Sensitivity of Differential Attention through the Lens of Adversarial Robustness",
        2025,
        "2510.00517",
        venue="ICLR 2026",
    ),
    Paper(
        "boyd2004convex",
        "Boyd, Stephen and Vandenberghe, Lieven",
        "Boyd & Vandenberghe",
        "Convex Optimization",
        2004,
        venue="Cambridge University Press",
        url="https://web.stanford.edu/~boyd/cvxbook/",
    ),
    Paper(
        "liu2022ecoformer",
        "Liu, Jing and Pan, Zizheng and He, Haoyu and Cai, Jianfei and Zhuang, Bohan",
        "Liu et al.",
        "EcoFormer: Energy-Saving Attention with Linear Complexity",
        2022,
        "2209.09004",
        venue="NeurIPS 2022",
    ),
    Paper(
        "kuang2025customizing",
        "Kuang, Yilun and Amsel, Noah and Lotfi, Sanae and Qiu, Shikai and Potapczynski, Andres and "
        "Wilson, Andrew Gordon",
        "Kuang et al.",
        "Customizing the Inductive Biases of Softmax Attention using Structured Matrices",
        2025,
        "2509.07963",
        venue="ICML 2025",
    ),
    Paper(
        "huang2025holographic",
        "Huang, Enhao and Zhang, Zhiyu and Xu, Tianxiang and Xia, Chunshu and Hu, Kaichun and Yang, Yuchen and "
        "Pan, Tongtong and Dong, Dong and Qin, Zhan",
        "Huang et al.",
        "Holographic Transformers for Complex-Valued Signal Processing: Integrating Phase Interference into "
        "Self-Attention",
        2025,
        "2509.19331",
    ),
    Paper(
        "shao2025complexformer",
        "Shao, Jintian and Huang, Hongyi and Wu, Jiayi and Zhang, Beiwen and Wu, ZhiYu and Shan, You and "
        "Zheng, MingKai",
        "Shao et al.",
        "ComplexFormer: Disruptively Advancing Transformer Inference Ability via Head-Specific Complex Vector "
        "Attention",
        2025,
        "2505.10222",
        "v1",
        venue="v2 (27 May 2025) withdrawn by the authors; the abstract of v1 is what the lab read",
    ),
    Paper(
        "zhang2024hedgehog",
        "Zhang, Michael and Bhatia, Kush and Kumbong, Hermann and R{\\'e}, Christopher",
        "Zhang et al.",
        "The Hedgehog \\& the Porcupine: Expressive Linear Attentions with Softmax Mimicry",
        2024,
        "2402.04347",
        venue="ICLR 2024",
    ),
    Paper(
        "arora2024simple",
        "Arora, Simran and Eyuboglu, Sabri and Zhang, Michael and Timalsina, Aman and Alberti, Silas and "
        "Zinsley, Dylan and Zou, James and Rudra, Atri and R{\\'e}, Christopher",
        "Arora et al.",
        "Simple linear attention language models balance the recall-throughput tradeoff",
        2024,
        "2402.18668",
        venue="ICML 2024",
    ),
    Paper(
        "hassani2025generalized",
        "Hassani, Ali and Zhou, Fengzhe and Kane, Aditya and Huang, Jiannan and Chen, Chieh-Yun and Shi, Min and "
        "Walton, Steven and Hoehnerbach, Markus and Thakkar, Vijay and Isaev, Michael and Zhang, Qinsheng and "
        "Xu, Bing and Wu, Haicheng and Hwu, Wen-mei and Liu, Ming-Yu and Shi, Humphrey",
        "Hassani et al.",
        "Generalized Neighborhood Attention: Multi-dimensional Sparse Attention at the Speed of Light",
        2025,
        "2504.16922",
    ),
    Paper(
        "yuan2025native",
        "Yuan, Jingyang and Gao, Huazuo and Dai, Damai and Luo, Junyu and Zhao, Liang and Zhang, Zhengyan and "
        "Xie, Zhenda and Wei, Y. X. and Wang, Lean and Xiao, Zhiping and Wang, Yuqing and Ruan, Chong and "
        "Zhang, Ming and Liang, Wenfeng and Zeng, Wangding",
        "Yuan et al.",
        "Native Sparse Attention: Hardware-Aligned and Natively Trainable Sparse Attention",
        2025,
        "2502.11089",
    ),
    Paper(
        "lee2025dynamic",
        "Lee, Hunjae and Clark, Corey",
        "Lee & Clark",
        "Dynamic Relational Priming Improves Transformer in Multivariate Time Series",
        2025,
        "2509.12196",
    ),
    Paper(
        "feng2024attention",
        "Feng, Leo and Tung, Frederick and Hajimirsadeghi, Hossein and Ahmed, Mohamed Osama and Bengio, Yoshua "
        "and Mori, Greg",
        "Feng et al.",
        "Attention as an RNN",
        2024,
        "2405.13956",
        "v2",
    ),
    Paper(
        "freytes2026geometric",
        "Freytes, Luis Rosario",
        "Freytes",
        "Geometric Attention: A Regime-Explicit Operator Semantics for Transformer Attention",
        2026,
        "2601.11618",
    ),
    Paper(
        "sander2022sinkformers",
        "Sander, Michael E. and Ablin, Pierre and Blondel, Mathieu and Peyr{\\'e}, Gabriel",
        "Sander et al.",
        "Sinkformers: Transformers with Doubly Stochastic Attention",
        2022,
        "2110.11773",
        venue="AISTATS 2022",
    ),
    Paper(
        "peyre2019computational",
        "Peyr{\\'e}, Gabriel and Cuturi, Marco",
        "Peyré & Cuturi",
        "Computational Optimal Transport",
        2019,
        "1803.00567",
        venue="Foundations and Trends in Machine Learning 11(5-6)",
    ),
    Paper(
        "amizadeh2025hierarchical",
        "Amizadeh, Saeed and Abdali, Sara and Li, Yinheng and Koishida, Kazuhito",
        "Amizadeh et al.",
        "Hierarchical Self-Attention: Generalizing Neural Attention Mechanics to Multi-Scale Problems",
        2025,
        "2509.15448",
    ),
    Paper(
        "he2025incontext",
        "He, Jianliang and Pan, Xintian and Chen, Siyu and Yang, Zhuoran",
        "He et al.",
        "In-Context Linear Regression Demystified: Training Dynamics and Mechanistic Interpretability of "
        "Multi-Head Softmax Attention",
        2025,
        "2503.12734",
        "v2",
        venue="ICML 2025",
    ),
    Paper(
        "huang2025generalization",
        "Huang, Yixiao and Zhu, Hanlin and Guo, Tianyu and Jiao, Jiantao and Sojoudi, Somayeh and Jordan, "
        "Michael I. and Russell, Stuart and Mei, Song",
        "Huang et al.",
        "Generalization or Hallucination? Understanding Out-of-Context Reasoning in Transformers",
        2025,
        "2506.10887",
        venue="NeurIPS 2025",
    ),
    Paper(
        "han2024agent",
        "Han, Dongchen and Ye, Tianzhu and Han, Yizeng and Xia, Zhuofan and Pan, Siyuan and Wan, Pengfei and "
        "Song, Shiji and Huang, Gao",
        "Han et al.",
        "Agent Attention: On the Integration of Softmax and Linear Attention",
        2024,
        "2312.08874",
        venue="ECCV 2024",
    ),
    Paper(
        "wu2022flowformer",
        "Wu, Haixu and Wu, Jialong and Xu, Jiehui and Wang, Jianmin and Long, Mingsheng",
        "Wu et al.",
        "Flowformer: Linearizing Transformers with Conservation Flows",
        2022,
        "2202.06258",
        venue="ICML 2022",
    ),
    Paper(
        "gao2025softplus",
        "Gao, Bo and Spratling, Michael W. and Gionfrida, Letizia",
        "Gao et al.",
        "Softplus Attention with Re-weighting Boosts Length Extrapolation in Large Language Models",
        2025,
        "2501.13428",
    ),
    Paper(
        "bae2026affine",
        "Bae, Jeongin and Park, Baeseong and Park, Gunho and Kim, Minsub and Lee, Joonhyung and Yoo, Junhee and "
        "Woo, Sunghyeon and Ryu, Jiwon and Kwon, Se Jung and Lee, Dongsoo",
        "Bae et al.",
        "Affine-Scaled Attention: Towards Flexible and Stable Transformer Attention",
        2026,
        "2602.23057",
    ),
    Paper(
        "ioannides2024gaussian",
        "Ioannides, Georgios and Chadha, Aman and Elkins, Aaron",
        "Ioannides et al.",
        "Gaussian Adaptive Attention is All You Need: Robust Contextual Representations Across Multiple Modalities",
        2024,
        "2401.11143",
    ),
    Paper(
        "zuo2025local",
        "Zuo, Yifei and Yin, Yutong and Zeng, Zhichen and Li, Ang and Zhu, Banghua and Wang, Zhaoran",
        "Zuo et al.",
        "Local Linear Attention: An Optimal Interpolation of Linear and Softmax Attention For Test-Time Regression",
        2025,
        "2510.01450",
    ),
    Paper(
        "roffo2026infinite",
        "Roffo, Giorgio",
        "Roffo",
        "Infinite Self-Attention",
        2026,
        "2603.00175",
    ),
)


def paper(key: str) -> Paper:
    """The paper with BibTeX key ``key``."""
    try:
        return PAPERS[key]
    except KeyError:
        raise KeyError(f"paper: no paper with key {key!r} in attnlab.papers.PAPERS") from None
